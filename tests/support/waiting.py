"""Waiting on a condition with a deadline: the only way tests synchronise with background work."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0,
                     what: str = "condition") -> None:
    """Wait until `condition()` (a plain or async callable) is true."""
    deadline = time.monotonic() + timeout_s
    while True:
        met = condition()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout_s}s")
        await asyncio.sleep(0.01)
