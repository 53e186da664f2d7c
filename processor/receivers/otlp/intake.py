"""What a receiver does with every request, whatever its transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from tracejudge.processor.component.errors import PermanentError, RetryableError, StorageError
from tracejudge.processor.consumer import Consumer
from tracejudge.processor.pdata.otlp_codec import Decoded
from tracejudge.processor.pdata.signals import SIGNALS, SPECS, Signal

# Above these sizes a body is decoded off the event loop (JSON decodes some 40 times slower than protobuf).
OFFLOAD_PROTOBUF_BYTES = 1024 * 1024
OFFLOAD_JSON_BYTES = 64 * 1024


class ReceiverMetrics:
    """As the Collector's: accepted and refused items per signal (spans, metric_points, log_records)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = {signal: Counter(
            f"tracejudge_receiver_accepted_{SPECS[signal].items}",
            f"{SPECS[signal].noun.capitalize()}s accepted by a receiver and handed to the pipeline.",
            ["receiver", "transport"], registry=registry) for signal in SIGNALS}
        self.refused = {signal: Counter(
            f"tracejudge_receiver_refused_{SPECS[signal].items}",
            f"{SPECS[signal].noun.capitalize()}s refused by a receiver (whole requests or partial rejects).",
            ["receiver", "transport", "reason"], registry=registry) for signal in SIGNALS}
        self.refused_requests = Counter(
            "tracejudge_receiver_refused_requests", "Requests refused by a receiver, by signal and status.",
            ["receiver", "transport", "signal", "reason"], registry=registry)


class Intake:
    """What happens to every request of one signal, whatever its transport: decode, hand to the pipeline, count.

    Returns the Decoded result once the pipeline accepted the batch; raises PermanentError or RetryableError
    (already counted) otherwise. Either way nothing is half-accepted: the pipeline's fan-out is all or nothing.
    """

    def __init__(self, name: str, signal: Signal, next_consumer: Consumer, metrics: ReceiverMetrics) -> None:
        self._name = name
        self.signal = signal
        self._next = next_consumer
        self._metrics = metrics
        self._accepted = metrics.accepted[signal]
        self._refused_items = metrics.refused[signal]

    async def accept(self, transport: str, decode: Callable[[], Decoded], size_bytes: int, as_json: bool = False
                     ) -> Decoded:
        """Big bodies are decoded in a worker thread, so one huge request does not stall every other client."""
        offload = size_bytes > (OFFLOAD_JSON_BYTES if as_json else OFFLOAD_PROTOBUF_BYTES)
        try:
            decoded = await asyncio.to_thread(decode) if offload else decode()
        except PermanentError as e:
            self._refused(transport, e.kind, 0)
            raise
        count = decoded.batch.item_count
        if count:  # else nothing to forward (all items rejected, or none sent)
            try:
                await self._next.consume(decoded.batch)
            except PermanentError as e:
                self._refused(transport, e.kind, count)
                raise
            except RetryableError:
                self._refused(transport, "overloaded", count)
                raise
            except StorageError:
                self._refused(transport, "storage", count)
                raise
            self._accepted.labels(self._name, transport).inc(count)
        if decoded.rejected:
            self._refused_items.labels(self._name, transport, "invalid").inc(decoded.rejected)
        return decoded

    def refuse(self, transport: str, reason: str) -> None:
        """Count a request refused before it could be decoded (auth, size, media type)."""
        self._refused(transport, reason, 0)

    def _refused(self, transport: str, reason: str, items: int) -> None:
        self._metrics.refused_requests.labels(self._name, transport, self.signal, reason).inc()
        if items:
            self._refused_items.labels(self._name, transport, reason).inc(items)
