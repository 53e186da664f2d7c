"""Exclusive locks on files that the kernel releases when their holder dies (flock): who owns a store's statistics,
which process is a worker of a given name. One process at a time; each open of the file is a holder of its own."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TextIO


def try_lock(path: Path) -> TextIO | None:
    """The open lock file, held until it is closed; None while another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock
