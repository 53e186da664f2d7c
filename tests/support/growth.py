"""How work grows with input size, for tests that must tell linear from super-linear without a wall-clock limit:
the ratio of CPU time at two sizes (best of several runs), which is ~k for linear work at k times the size and ~k²
for quadratic work."""

from __future__ import annotations

import time
from collections.abc import Callable


def cpu_s(work: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def growth(work_at: Callable[[int], Callable[[], object]], small: int, factor: int = 8) -> float:
    """CPU time of `work_at(small * factor)` over that of `work_at(small)`."""
    return cpu_s(work_at(small * factor)) / max(cpu_s(work_at(small)), 1e-6)
