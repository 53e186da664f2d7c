"""The `memory_limiter` processor, as in the Collector: above a soft limit of the process's resident memory, new data
is refused with the retryable status (UNAVAILABLE + RetryInfo / 503 + Retry-After) until usage is back under it;
clients keep their data and retry. Place it first in each pipeline (traces, metrics and logs).

Memory is read from /proc/self/statm every `check_interval`. The soft limit is `limit_mib - spike_limit_mib` (the
spike allowance is what may arrive between two checks). Above it, freed memory is also handed back to the OS
(garbage collection, then glibc's `malloc_trim`), so that one big request does not hold on to its peak.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, RetryableError
from tracejudge.processor.component.factory import EVERY_SIGNAL, Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.consumer import Batch, Consumer
from tracejudge.processor.pdata.signals import SIGNALS, SPECS, Signal

log = logging.getLogger(__name__)

MIB = 1024 * 1024
RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class MemoryLimiterConfig:
    check_interval: Duration = 1.0
    limit_mib: int = 0  # hard limit of resident memory; or `limit_percentage` of the machine's (or cgroup's)
    spike_limit_mib: int = 0  # default: 20% of the limit
    limit_percentage: int = 0
    spike_limit_percentage: int = 0

    def validate(self, path: str) -> None:
        problems = []
        if self.check_interval <= 0:
            problems.append(f"{path}.check_interval: must be positive")
        if (self.limit_mib > 0) == (self.limit_percentage > 0):
            problems.append(f"{path}: set one of limit_mib or limit_percentage (a positive number)")
        if not 0 <= self.limit_percentage <= 100 or not 0 <= self.spike_limit_percentage <= 100:
            problems.append(f"{path}: percentages must be between 0 and 100")
        if self.limit_mib and self.spike_limit_mib >= self.limit_mib:
            problems.append(f"{path}.spike_limit_mib: must be below limit_mib ({self.limit_mib})")
        if self.limit_percentage and self.spike_limit_percentage >= self.limit_percentage:
            problems.append(f"{path}.spike_limit_percentage: must be below limit_percentage")
        if min(self.limit_mib, self.spike_limit_mib, self.limit_percentage, self.spike_limit_percentage) < 0:
            problems.append(f"{path}: limits must not be negative")
        if problems:
            raise ConfigError(problems)

    def limits_bytes(self, total_bytes: int) -> tuple[int, int]:
        """(soft, hard) limits in bytes, given the memory the machine (or cgroup) has."""
        if self.limit_mib:
            hard = self.limit_mib * MIB
            spike = self.spike_limit_mib * MIB if self.spike_limit_mib else hard // 5
        else:
            hard = total_bytes * self.limit_percentage // 100
            spike = (total_bytes * self.spike_limit_percentage // 100 if self.spike_limit_percentage
                     else hard // 5)
        return hard - spike, hard


class MemoryLimiterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = {signal: Counter(
            f"tracejudge_memory_limiter_refused_{SPECS[signal].items}", f"{SPECS[signal].noun.capitalize()}s refused "
            "because memory was above the soft limit (the client was told to retry).", ["processor"],
            registry=registry) for signal in SIGNALS}
        self.usage = Gauge(
            "tracejudge_memory_limiter_usage_bytes", "Resident memory at the last check.", ["processor"],
            registry=registry)
        self.soft_limit = Gauge(
            "tracejudge_memory_limiter_soft_limit_bytes", "Above this, data is refused.", ["processor"],
            registry=registry)


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def total_memory_bytes() -> int:
    """The cgroup's memory limit if it has one, else the machine's memory."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text != "max":
            return int(text)
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _trimmer() -> Callable[[], object]:
    """Hands memory freed by Python back to the OS (glibc keeps it otherwise); a no-op without glibc."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    return (lambda: trim(0)) if trim is not None else (lambda: None)


class MemoryLimiterProcessor:
    def __init__(self, settings: CreateSettings, config: MemoryLimiterConfig, next_consumer: Consumer,
                 usage: Callable[[], int] = resident_bytes, total: Callable[[], int] = total_memory_bytes) -> None:
        self._next = next_consumer
        self._config = config
        self._usage = usage
        self.soft_bytes, self.hard_bytes = config.limits_bytes(total())
        metrics = settings.host.telemetry.metrics(MemoryLimiterMetrics)
        self._refused = metrics.refused[cast(Signal, settings.signal)].labels(settings.name)
        self._gauge = metrics.usage.labels(settings.name)
        metrics.soft_limit.labels(settings.name).set(self.soft_bytes)
        self._name = settings.name
        self._trim = _trimmer()
        self.refusing = False
        self._task: asyncio.Task[None] | None = None

    async def consume(self, batch: Batch) -> None:
        if self.refusing:
            self._refused.inc(batch.item_count)
            raise RetryableError(f"memory usage is above the soft limit of {self.soft_bytes // MIB} MiB; retry later",
                                 retry_after_s=RETRY_AFTER_S)
        await self._next.consume(batch)

    def check(self) -> None:
        """Read memory usage; above the soft limit, give freed memory back and read it again before deciding."""
        used = self._usage()
        if used > self.soft_bytes:
            gc.collect()
            self._trim()
            used = self._usage()
        self._gauge.set(used)
        refusing = used > self.soft_bytes
        if refusing != self.refusing:
            if refusing:
                log.warning("%s: memory usage %d MiB is above the soft limit (%d MiB); refusing data until it is "
                            "back under it", self._name, used // MIB, self.soft_bytes // MIB)
            else:
                log.warning("%s: memory usage %d MiB is back under the soft limit; accepting data", self._name,
                            used // MIB)
            self.refusing = refusing

    async def start(self) -> None:
        self.check()
        self._task = asyncio.create_task(self._watch(), name=f"{self._name} memory check")

    async def shutdown(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._config.check_interval)
            started = time.monotonic()
            self.check()
            if time.monotonic() - started > 0.5:
                log.warning("%s: freeing memory took %.1f s", self._name, time.monotonic() - started)


factory = Factory("memory_limiter", "processors", MemoryLimiterConfig, MemoryLimiterProcessor, signals=EVERY_SIGNAL)
