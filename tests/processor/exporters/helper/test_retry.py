"""Retries: backoff with jitter under a deadline; a peer's hint lengthens a wait but never shortens it."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from tracejudge.processor.component.errors import PermanentError, RetryableError
from tracejudge.processor.exporters.helper.retry import RetryConfig, call_with_retry

FAST = RetryConfig(initial_interval=0.05, randomization_factor=0.0, multiplier=2.0, max_interval=0.1,
                   max_elapsed_time=0.5)


def failing(times: int, error: Exception, log: list[float]):  # type: ignore[no-untyped-def]
    async def attempt() -> None:
        log.append(time.monotonic())
        if len(log) <= times:
            raise error
    return attempt


async def test_retries_until_success_with_growing_intervals() -> None:
    log: list[float] = []
    await call_with_retry(failing(3, RetryableError("busy"), log), FAST, asyncio.Event())
    gaps = [b - a for a, b in itertools.pairwise(log)]
    assert len(log) == 4
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095  # lower bounds only: a busy machine may wait longer


async def test_a_zero_retry_after_does_not_make_a_busy_loop() -> None:
    log: list[float] = []
    with pytest.raises(RetryableError):
        await call_with_retry(failing(1000, RetryableError("busy", retry_after_s=0.0), log), FAST, asyncio.Event())
    assert len(log) <= 7  # 0.5 s of 0.05-0.1 s waits, not hundreds of attempts


async def test_a_longer_retry_after_is_honoured() -> None:
    log: list[float] = []
    await call_with_retry(failing(1, RetryableError("slow down", retry_after_s=0.3), log), FAST, asyncio.Event())
    assert log[1] - log[0] >= 0.29


async def test_permanent_errors_and_stop_end_retrying_at_once() -> None:
    log: list[float] = []
    with pytest.raises(PermanentError):
        await call_with_retry(failing(5, PermanentError("bad"), log), FAST, asyncio.Event())
    assert len(log) == 1
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(RetryableError):
        await call_with_retry(failing(5, RetryableError("busy"), []), FAST, stop)
