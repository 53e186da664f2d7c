"""The exporter contract and the bounded sending queue that every network exporter sits behind."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from .batch import TraceBatch
from .config_decode import Duration
from .errors import ConfigError, PermanentError, RetryableError
from .retry import RetryConfig, call_with_retry
from .telemetry import Telemetry

log = logging.getLogger(__name__)


class Exporter(Protocol):
    """The end of a pipeline. A fan-out first asks every exporter `has_room`, then calls `enqueue` on each
    without awaiting in between, so a batch is either in every exporter's queue or in none. After `enqueue`
    the exporter owns delivery; a failure is counted and logged, never reported back to the client."""

    name: str

    def has_room(self, batch: TraceBatch) -> bool: ...

    def enqueue(self, batch: TraceBatch) -> None: ...

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class Sender(Protocol):
    """One delivery attempt to a downstream; raises RetryableError or PermanentError."""

    async def send(self, payload: bytes, timeout_s: float) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class QueueConfig:
    """`sending_queue`, in requests as the Collector counts them by default."""

    enabled: bool = True
    num_consumers: int = 10
    queue_size: int = 1000

    def validate(self, path: str) -> None:
        problems = []
        if not self.enabled:
            problems.append(f"{path}.enabled: the sending queue cannot be disabled: without it a slow backend "
                            "would hold up the application's export calls")
        if self.num_consumers < 1:
            problems.append(f"{path}.num_consumers: must be at least 1")
        if self.queue_size < 1:
            problems.append(f"{path}.queue_size: must be at least 1")
        if problems:
            raise ConfigError(problems)


# How long shutdown waits for queued requests to be delivered before giving up on them.
DRAIN_TIMEOUT_S = 10.0


class QueuedExporter:
    """A bounded in-memory queue drained by `num_consumers` workers, each delivering with retries."""

    def __init__(self, name: str, sender: Sender, queue: QueueConfig, retry: RetryConfig, timeout_s: Duration,
                 telemetry: Telemetry) -> None:
        self.name = name
        self._sender = sender
        self._queue_config = queue
        self._retry = retry
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[TraceBatch] = asyncio.Queue(maxsize=queue.queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._accepting = False
        self._sent = telemetry.exporter_sent_spans.labels(name)
        self._failed = telemetry.exporter_send_failed_spans.labels(name)
        self._refused = telemetry.exporter_enqueue_failed_spans.labels(name)
        self._size = telemetry.exporter_queue_size.labels(name)
        telemetry.exporter_queue_capacity.labels(name).set(queue.queue_size)

    def has_room(self, batch: TraceBatch) -> bool:
        if self._accepting and not self._queue.full():
            return True
        self._refused.inc(batch.span_count)
        return False

    def enqueue(self, batch: TraceBatch) -> None:
        if not self._accepting:
            raise RetryableError(f"exporter {self.name} is shutting down")
        self._queue.put_nowait(batch)
        self._size.set(self._queue.qsize())

    async def start(self) -> None:
        self._accepting = True
        self._workers = [asyncio.create_task(self._work(), name=f"{self.name}/{i}")
                         for i in range(self._queue_config.num_consumers)]

    async def shutdown(self) -> None:
        """Stop accepting, deliver what is queued (up to DRAIN_TIMEOUT_S), then stop the workers."""
        if not self._accepting and not self._workers:
            await self._sender.close()
            return
        self._accepting = False
        drained = asyncio.ensure_future(self._queue.join())
        done, _ = await asyncio.wait({drained}, timeout=DRAIN_TIMEOUT_S)
        if not done:
            drained.cancel()
            lost = self._discard_queued()
            log.error("exporter %s: gave up on %d queued span(s) at shutdown after %.0fs of retrying; "
                      "requests in flight stop retrying now", self.name, lost, DRAIN_TIMEOUT_S)
        self._stop.set()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        await self._sender.close()

    async def _work(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                await self._deliver(batch)
            except Exception:  # the loop must survive anything a sender does
                log.exception("exporter %s: unexpected error delivering %d span(s)", self.name, batch.span_count)
                self._failed.inc(batch.span_count)
            finally:
                self._queue.task_done()
                self._size.set(self._queue.qsize())

    async def _deliver(self, batch: TraceBatch) -> None:
        async def attempt() -> None:
            await self._sender.send(batch.payload, self._timeout_s)

        try:
            await call_with_retry(attempt, self._retry, self._stop)
        except (RetryableError, PermanentError) as e:
            self._failed.inc(batch.span_count)
            log.error("exporter %s: dropped %d span(s) after retries: %s", self.name, batch.span_count, e)
            return
        self._sent.inc(batch.span_count)

    def _discard_queued(self) -> int:
        lost = 0
        while not self._queue.empty():
            lost += self._queue.get_nowait().span_count
            self._queue.task_done()
        self._failed.inc(lost)
        return lost
