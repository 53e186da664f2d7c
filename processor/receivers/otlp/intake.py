"""What a receiver does with every request, whatever its transport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from tracejudge.processor.component.errors import PermanentError, RetryableError, StorageError
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.otlp_codec import Decoded

# Above these sizes a body is decoded off the event loop (JSON decodes some 40 times slower than protobuf).
OFFLOAD_PROTOBUF_BYTES = 1024 * 1024
OFFLOAD_JSON_BYTES = 64 * 1024


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted_spans = Counter(
            "tracejudge_receiver_accepted_spans", "Spans accepted by a receiver and handed to the pipeline.",
            ["receiver", "transport"], registry=registry)
        self.refused_spans = Counter(
            "tracejudge_receiver_refused_spans", "Spans refused by a receiver (whole requests or partial rejects).",
            ["receiver", "transport", "reason"], registry=registry)
        self.refused_requests = Counter(
            "tracejudge_receiver_refused_requests", "Requests refused by a receiver, by status.",
            ["receiver", "transport", "reason"], registry=registry)


class Intake:
    """What happens to every request, whatever its transport: decode, hand to the pipeline, count.

    Returns the Decoded result once the pipeline accepted the batch; raises PermanentError or RetryableError
    (already counted) otherwise. Either way nothing is half-accepted: the pipeline's fan-out is all or nothing.
    """

    def __init__(self, name: str, next_consumer: TracesConsumer, metrics: ReceiverMetrics) -> None:
        self._name = name
        self._next = next_consumer
        self._metrics = metrics

    async def accept(self, transport: str, decode: Callable[[], Decoded], size_bytes: int, as_json: bool = False
                     ) -> Decoded:
        """Big bodies are decoded in a worker thread, so one huge request does not stall every other client."""
        offload = size_bytes > (OFFLOAD_JSON_BYTES if as_json else OFFLOAD_PROTOBUF_BYTES)
        try:
            decoded = await asyncio.to_thread(decode) if offload else decode()
        except PermanentError as e:
            self._refused(transport, e.kind, 0)
            raise
        if decoded.batch.span_count:  # else nothing to forward (all spans rejected, or none sent)
            try:
                await self._next.consume(decoded.batch)
            except PermanentError as e:
                self._refused(transport, e.kind, decoded.batch.span_count)
                raise
            except RetryableError:
                self._refused(transport, "overloaded", decoded.batch.span_count)
                raise
            except StorageError:
                self._refused(transport, "storage", decoded.batch.span_count)
                raise
            self._metrics.accepted_spans.labels(self._name, transport).inc(decoded.batch.span_count)
        if decoded.rejected_spans:
            self._metrics.refused_spans.labels(self._name, transport, "invalid").inc(
                decoded.rejected_spans)
        return decoded

    def refuse(self, transport: str, reason: str) -> None:
        """Count a request refused before it could be decoded (auth, size, media type)."""
        self._refused(transport, reason, 0)

    def _refused(self, transport: str, reason: str, spans: int) -> None:
        self._metrics.refused_requests.labels(self._name, transport, reason).inc()
        if spans:
            self._metrics.refused_spans.labels(self._name, transport, reason).inc(spans)
