"""What flows through a pipeline: one accepted OTLP trace export request."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .llm_span import LlmSpan


@dataclass(frozen=True, slots=True)
class TraceBatch:
    """An accepted request. `payload` is what exporters send, byte for byte.

    `request` is the parsed view of `payload`, shared by every stage: it must never be mutated. A stage that
    changes spans builds a new message, serialises it into a new payload and passes on a new TraceBatch.
    """

    payload: bytes
    request: ExportTraceServiceRequest
    span_count: int
    receiver: str = ""
    llm_spans: tuple[LlmSpan, ...] = ()
