"""The bounded sending queue that every network exporter sits behind (the Collector's exporterhelper)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

from prometheus_client import CollectorRegistry, Counter, Gauge

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, PermanentError, RetryableError, StorageError
from tracejudge.processor.component.factory import Reference
from tracejudge.processor.component.host import ComponentStatus, CreateSettings
from tracejudge.processor.component.storage import Storage, storage_reference
from tracejudge.processor.consumer import Batch
from tracejudge.processor.exporters.helper.retry import RetryConfig, call_with_retry
from tracejudge.processor.exporters.helper.sending_queue import DiskQueue, MemoryQueue, QueuedItem, SendingQueue, Sizer
from tracejudge.processor.pdata.signals import SIGNALS, SPECS, Signal
from tracejudge.processor.transport.tls import TlsClientConfig

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Delivery to one downstream: `encode` once per request (e.g. compress), then `send` per attempt, which
    raises RetryableError or PermanentError."""

    async def encode(self, payload: bytes) -> bytes: ...

    async def send(self, body: bytes, timeout_s: float) -> None: ...

    async def close(self) -> None: ...


# What a sending queue holds when its config does not say, by sizer. With neither `queue_size` nor `sizer` set, a
# queue holds 64 MiB of requests: bounded memory whatever the request sizes (the Collector's 1000 requests could
# be 20 GiB of them). `queue_size` alone keeps the Collector's meaning: that many requests.
DEFAULT_QUEUE_SIZE: dict[Sizer, int] = {"requests": 1000, "items": 100_000, "bytes": 64 * 1024 * 1024}


@dataclass(frozen=True)
class QueueConfig:
    """`sending_queue`, as in the Collector but bounded in bytes by default (see DEFAULT_QUEUE_SIZE)."""

    enabled: bool = True
    num_consumers: int = 10
    queue_size: int | None = None  # in the unit of `sizer`
    sizer: Sizer | None = None  # requests, items (spans) or bytes: bytes bound the memory a queue can take
    # A file_storage extension: the queue is kept on disk and survives a crash (delivery is then at least once).
    storage: str = ""

    @property
    def unit(self) -> Sizer:
        return self.sizer or ("requests" if self.queue_size is not None else "bytes")

    @property
    def capacity(self) -> int:
        return self.queue_size if self.queue_size is not None else DEFAULT_QUEUE_SIZE[self.unit]

    def validate(self, path: str) -> None:
        problems = []
        if not self.enabled:
            problems.append(f"{path}.enabled: the sending queue cannot be disabled: without it a slow backend "
                            "would hold up the application's export calls")
        if self.num_consumers < 1:
            problems.append(f"{path}.num_consumers: must be at least 1")
        if self.queue_size is not None and self.queue_size < 1:
            problems.append(f"{path}.queue_size: must be at least 1")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True, kw_only=True)
class ExporterSettings:
    """What every network exporter shares, under the Collector's key names."""

    tls: TlsClientConfig = field(default_factory=TlsClientConfig)
    headers: dict[str, str] = field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    timeout: Duration = 5.0  # per attempt
    sending_queue: QueueConfig = field(default_factory=QueueConfig)
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)

    def validate_settings(self, path: str) -> None:
        if self.timeout <= 0:
            raise ConfigError(f"{path}.timeout: must be positive")

    def references(self, path: str) -> list[Reference]:
        storage = self.sending_queue.storage
        return [storage_reference(storage, f"{path}.sending_queue.storage")] if storage else []


class ExporterMetrics:
    """As the Collector's: items per signal (sent_spans, sent_log_records, ...); queues by exporter and data_type."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def per_signal(what: str, help_text: str) -> dict[Signal, Counter]:
            return {signal: Counter(f"tracejudge_exporter_{what}_{SPECS[signal].items}",
                                    help_text.format(items=f"{SPECS[signal].noun.capitalize()}s"), ["exporter"],
                                    registry=registry) for signal in SIGNALS}

        self.sent = per_signal("sent", "{items} an exporter delivered downstream.")
        self.send_failed = per_signal(
            "send_failed", "{items} an exporter gave up on after its retries (or a permanent downstream error).")
        self.enqueue_failed = per_signal(
            "enqueue_failed", "{items} refused because an exporter's sending queue was full (the client was told to "
            "retry).")
        self.queue_size = Gauge(
            "tracejudge_exporter_queue_size", "What waits in an exporter's sending queue, in its sizer's unit.",
            ["exporter", "data_type"], registry=registry)
        self.queue_capacity = Gauge(
            "tracejudge_exporter_queue_capacity", "Capacity of an exporter's sending queue, in its sizer's unit.",
            ["exporter", "data_type"], registry=registry)


# How long shutdown waits for queued requests to be delivered before giving up on them.
DRAIN_TIMEOUT_S = 10.0
_ERROR_PAUSE_S = 1.0


class QueuedExporter:
    """A bounded sending queue of one signal's requests drained by `num_consumers` workers, each delivering with
    retries. Items are what the signal counts: spans, log records or metric data points."""

    def __init__(self, name: str, sender: Sender, config: QueueConfig, retry: RetryConfig, timeout_s: Duration,
                 metrics: ExporterMetrics, open_queue: Callable[[], SendingQueue], status: ComponentStatus,
                 signal: Signal = "traces") -> None:
        self.name = name
        self._noun = SPECS[signal].noun
        self._id = f"exporters/{name}" if signal == "traces" else f"exporters/{name} ({signal})"
        self._sending_id = f"{self._id} sending"  # apart from the queue's own state (a disk it cannot write)
        self._status = status
        self._sender = sender
        self._config = config
        self._retry = retry
        self._timeout_s = timeout_s
        self._open_queue = open_queue
        self._queue: SendingQueue | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._sent = metrics.sent[signal].labels(name)
        self._failed = metrics.send_failed[signal].labels(name)
        self._refused = metrics.enqueue_failed[signal].labels(name)
        self._size = metrics.queue_size.labels(name, signal)
        metrics.queue_capacity.labels(name, signal).set(config.capacity)

    def has_room(self, batch: Batch) -> bool:
        queue = self._queue
        if queue is not None and not self._stop.is_set() and queue.has_room(batch.item_count, len(batch.payload)):
            return True
        self._refused.inc(batch.item_count)
        return False

    def enqueue(self, batch: Batch) -> QueuedItem:
        if self._queue is None or self._stop.is_set():
            raise RetryableError(f"exporter {self.name} is not running")
        try:
            item = self._queue.put(batch.payload, batch.item_count)
        except StorageError as e:
            self._status.set_degraded(self._id, str(e))
            raise
        self._status.set_ok(self._id)
        self._idle.clear()
        self._size.set(self._queue.size())
        return item

    def withdraw(self, receipt: object) -> None:
        assert isinstance(receipt, QueuedItem) and self._queue is not None
        self._queue.withdraw(receipt)
        self._size.set(self._queue.size())

    def pending(self) -> int:
        return self._queue.pending() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = self._open_queue()
        if self._queue.pending():
            log.info("exporter %s: resuming delivery of %d request(s) queued on disk", self.name,
                     self._queue.pending())
        self._size.set(self._queue.size())
        self._workers = [asyncio.create_task(self._work(self._queue), name=f"{self.name}/{i}")
                         for i in range(self._config.num_consumers)]

    async def shutdown(self) -> None:
        """Stop accepting, deliver what is queued (up to DRAIN_TIMEOUT_S), then stop the workers. What is
        still queued then is kept on disk for the next start, or, in memory, counted as failed and logged."""
        queue, self._queue = self._queue, None
        if queue is None:
            await self._sender.close()
            return
        if queue.pending():
            self._idle.clear()
            await _wait(self._idle, DRAIN_TIMEOUT_S)
        self._stop.set()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if queue.pending() and queue.durable:
            log.warning("exporter %s: %d request(s) stay queued on disk and are sent after the next start",
                        self.name, queue.pending())
        elif waiting := queue.waiting():  # (those in flight were counted by their worker)
            lost = sum(item.item_count for item in waiting)
            self._failed.inc(lost)
            log.error("exporter %s: gave up on %d queued request(s) (%d %s(s)) at shutdown after %.0fs",
                      self.name, len(waiting), lost, self._noun, DRAIN_TIMEOUT_S)
        queue.close()
        await self._sender.close()

    async def _work(self, queue: SendingQueue) -> None:
        while True:
            try:
                await self._work_once(queue)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything a sender or the queue does
                log.exception("exporter %s: unexpected error in a sending-queue worker", self.name)
                await asyncio.sleep(_ERROR_PAUSE_S)  # a persistent fault must not become a hot loop

    async def _work_once(self, queue: SendingQueue) -> None:
        item = await queue.get()
        try:
            delivered = await self._deliver(item)
        except asyncio.CancelledError:
            if not queue.durable:
                self._failed.inc(item.item_count)  # in flight at shutdown: lost with the process
            raise
        except Exception:
            log.exception("exporter %s: unexpected error delivering %d %s(s)", self.name, item.item_count, self._noun)
            self._failed.inc(item.item_count)
            queue.done(item)  # given up on: counted and logged
        else:
            if not delivered and not queue.durable:
                self._failed.inc(item.item_count)  # retries cut short by shutdown: lost with the process
            if delivered or not queue.durable:
                queue.done(item)
        self._size.set(queue.size())
        if not queue.pending():
            self._idle.set()

    async def _deliver(self, item: QueuedItem) -> bool:
        """True when the item is finished with (sent, or given up on and counted); False when shutdown
        interrupted its retries, so a disk queue keeps it."""

        body = await self._sender.encode(item.payload)

        async def attempt() -> None:
            try:
                await self._sender.send(body, self._timeout_s)
            except (RetryableError, PermanentError) as error:
                # an operator hears of it at the first failure (health check, /metrics, the log), not at the drop
                self._status.set_degraded(self._sending_id, f"cannot deliver: {error}")
                raise
            self._status.set_ok(self._sending_id)

        try:
            await call_with_retry(attempt, self._retry, self._stop)
        except (RetryableError, PermanentError) as e:
            if self._stop.is_set() and isinstance(e, RetryableError):
                return False
            self._failed.inc(item.item_count)
            log.error("exporter %s: dropped %d %s(s) after retries: %s", self.name, item.item_count, self._noun, e)
            return True
        self._sent.inc(item.item_count)
        return True


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        waiter.cancel()


def queued_exporter(settings: CreateSettings, sender: Sender, config: ExporterSettings) -> QueuedExporter:
    """An exporter of `settings.signal` delivering through `sender` behind the sending queue `config` describes:
    in memory, or in the `storage` extension it names (a file per exporter and signal)."""
    queue = config.sending_queue
    signal = cast(Signal, settings.signal)
    open_queue: Callable[[], SendingQueue] = functools.partial(MemoryQueue, queue.capacity, queue.unit)
    if queue.storage:
        storage: Storage = settings.host.find("extensions", "storage", queue.storage)
        # one file per exporter, signal and process: a sending queue belongs to the process that fills it
        process = settings.host.worker_process
        parts = [settings.name, *([signal] if signal != "traces" else []), *([process] if process else [])]
        file = "_".join([*parts, "queue"])
        open_queue = functools.partial(DiskQueue, storage.path_for(file), queue.capacity, queue.unit,
                                       storage.space_exhausted)
    return QueuedExporter(settings.name, sender, queue, config.retry_on_failure, config.timeout,
                          settings.host.telemetry.metrics(ExporterMetrics), open_queue, settings.host.status, signal)
