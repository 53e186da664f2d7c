"""The `file_storage` extension: the directory where components keep their SQLite databases (a Storage, and a
DatabaseStorage for stores written through `component.database`).

It also keeps a reserve of disk space there (`reserve_mib`, a file of that size): deleting what was delivered
needs space too, so when the disk fills up and a store cannot delete, the reserve is given back and the store
drains. The health check says so (degraded) until there is room to take the reserve again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from tracejudge.processor.component.database import Database
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.component.sqlite import SqliteDatabase

log = logging.getLogger(__name__)

RESERVE_FILE = "space-reserve"
RESTORE_INTERVAL_S = 5.0  # how often a released reserve is taken again, if there is room for it (twice its size)


@dataclass(frozen=True)
class FileStorageConfig:
    directory: str
    create_directory: bool = True
    reserve_mib: int = 16  # kept free for deletes when the disk fills up; 0: none

    def validate(self, path: str) -> None:
        problems = []
        if not self.directory:
            problems.append(f"{path}.directory: must not be empty")
        elif not self.create_directory and not os.path.isdir(self.directory):
            problems.append(f"{path}.directory: {self.directory!r} does not exist (or set create_directory)")
        if self.reserve_mib < 0:
            problems.append(f"{path}.reserve_mib: must not be negative")
        if problems:
            raise ConfigError(problems)

    def path_for(self, component: str) -> str:
        """The database file of one component, e.g. `llm_extract` → <directory>/llm_extract.db."""
        return os.path.join(self.directory, component.replace("/", "_") + ".db")

    def database(self, component: str, migrations: Sequence[str], what: str, read_only: bool = False) -> Database:
        if not read_only and self.create_directory:
            os.makedirs(self.directory, exist_ok=True)
        return SqliteDatabase(self.path_for(component), migrations, what, read_only)

    shared = False


class FileStorage:
    def __init__(self, settings: CreateSettings, config: FileStorageConfig) -> None:
        self._config = config
        self._id = f"extensions/{settings.name}"
        self._status = settings.host.status
        self._reserve = os.path.join(config.directory, RESERVE_FILE)
        self._reserve_bytes = config.reserve_mib * 1024 * 1024
        self._reserved = False
        self._restoring: asyncio.Task[None] | None = None

    def path_for(self, component: str) -> str:
        return self._config.path_for(component)

    def database(self, component: str, migrations: Sequence[str], what: str, read_only: bool = False) -> Database:
        return self._config.database(component, migrations, what, read_only)

    shared = False

    def space_exhausted(self) -> bool:
        """A store here could not delete for want of space: give the reserve back. False if there was none."""
        if not self._reserved:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._reserve)
        self._reserved = False
        self._status.set_degraded(self._id, f"the disk under {self._config.directory} is full: its "
                                            f"{self._config.reserve_mib} MiB reserve was given back so that delivered "
                                            "data can be deleted; free some space to restore it")
        return True

    async def start(self) -> None:
        if self._config.create_directory:
            os.makedirs(self._config.directory, exist_ok=True)
        if self._reserve_bytes:
            self._take_reserve()
            self._restoring = asyncio.create_task(self._restore(), name=f"{self._id} reserve")

    async def shutdown(self) -> None:
        if self._restoring is not None:
            self._restoring.cancel()
            await asyncio.gather(self._restoring, return_exceptions=True)
            self._restoring = None

    def _take_reserve(self) -> None:
        try:
            fd = os.open(self._reserve, os.O_CREAT | os.O_WRONLY, 0o600)
            try:
                os.posix_fallocate(fd, 0, self._reserve_bytes)
            finally:
                os.close(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(self._reserve)
            self._status.set_degraded(self._id, f"cannot keep {self._config.reserve_mib} MiB in reserve under "
                                                f"{self._config.directory} ({e.strerror}): a full disk could "
                                                "keep delivered data from being deleted")
            return
        self._reserved = True
        self._status.set_ok(self._id)

    async def _restore(self) -> None:
        while True:
            await asyncio.sleep(RESTORE_INTERVAL_S)
            if self._reserved:
                continue
            disk = os.statvfs(self._config.directory)
            if disk.f_bavail * disk.f_frsize >= 2 * self._reserve_bytes:
                self._take_reserve()


factory = Factory("file_storage", "extensions", FileStorageConfig, FileStorage,
                  offers=frozenset({"storage", "database"}))
