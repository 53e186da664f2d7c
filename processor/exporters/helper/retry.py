"""Retry with exponential backoff and jitter under an overall deadline (the Collector's `retry_on_failure`)."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, RetryableError


@dataclass(frozen=True)
class RetryConfig:
    enabled: bool = True
    initial_interval: Duration = 5.0
    randomization_factor: float = 0.5
    multiplier: float = 1.5
    max_interval: Duration = 30.0
    max_elapsed_time: Duration = 300.0  # 0 means: retry until shutdown

    def validate(self, path: str) -> None:
        problems = []
        if self.initial_interval <= 0:
            problems.append(f"{path}.initial_interval: must be positive")
        if not 0 <= self.randomization_factor < 1:
            problems.append(f"{path}.randomization_factor: must be in [0, 1)")
        if self.multiplier < 1:
            problems.append(f"{path}.multiplier: must be at least 1")
        if self.max_interval < self.initial_interval:
            problems.append(f"{path}.max_interval: must be at least initial_interval")
        if self.max_elapsed_time < 0:
            problems.append(f"{path}.max_elapsed_time: must not be negative")
        if problems:
            raise ConfigError(problems)


async def call_with_retry(
    attempt: Callable[[], Awaitable[None]],
    config: RetryConfig,
    stop: asyncio.Event,
    *,
    rng: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run `attempt` until it succeeds. RetryableError is retried after the next backoff interval, or after the
    peer's `retry_after_s` when that is longer, until `max_elapsed_time` would be exceeded or `stop` is set; then
    the last error is raised. Any other exception is raised at once."""
    deadline = clock() + config.max_elapsed_time if config.max_elapsed_time > 0 else float("inf")
    interval = config.initial_interval
    while True:
        try:
            await attempt()
            return
        except RetryableError as error:
            if not config.enabled or stop.is_set():
                raise
            # A peer's throttling hint is a lower bound: a hint of 0 must not turn retries into a busy loop.
            delay = max(interval * (1 + config.randomization_factor * (2 * rng() - 1)), error.retry_after_s or 0.0)
            interval = min(interval * config.multiplier, config.max_interval)
            if clock() + delay > deadline:
                raise
            if await _stopped_within(stop, delay):
                raise


async def _stopped_within(stop: asyncio.Event, delay_s: float) -> bool:
    # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a cancellation that races with `stop`.
    waiter = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=delay_s)
    finally:
        waiter.cancel()
    return bool(done)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, with no zone information
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())
