"""How late the event loop runs: the receivers, health check and metrics all wait on it, so a stall there is a
stall for every client. A timer that should fire every INTERVAL_S records how late it fired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import CollectorRegistry, Histogram

from tracejudge.processor.component.telemetry import Telemetry

log = logging.getLogger(__name__)

INTERVAL_S = 0.1
STALL_S = 0.5  # a lag beyond this is logged


class LoopMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Histogram(
            "tracejudge_event_loop_lag_seconds", "How late the event loop ran a timer: while it is late, no "
            "request is answered.", buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry)


class LoopMonitor:
    def __init__(self, telemetry: Telemetry) -> None:
        self._lag = telemetry.metrics(LoopMetrics).lag
        self._task: asyncio.Task[None] | None = None
        self.worst_s = 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="event loop monitor")

    async def shutdown(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            due = time.monotonic() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            lag = max(0.0, time.monotonic() - due)
            self._lag.observe(lag)
            self.worst_s = max(self.worst_s, lag)
            if lag > STALL_S:
                log.warning("the event loop stalled for %.2f s: no request was answered meanwhile", lag)
