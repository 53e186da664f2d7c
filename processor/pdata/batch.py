"""What flows through a pipeline: one accepted OTLP export request (traces, or logs and metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.processor.pdata.llm_span import LlmSpan, Retrieval
from tracejudge.processor.pdata.sample import Sample
from tracejudge.processor.pdata.signals import Signal

NO_EVALUATIONS: Mapping[str, tuple[EvaluationResult, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TraceBatch:
    """An accepted request. `payload` is what exporters send, byte for byte.

    `request` is the parsed view of the request as received, shared by every stage: it must never be mutated.
    The one stage that changes spans, `llm_checks`, writes its events into a new `payload` (not into `request`,
    which does not show them) and passes on a new TraceBatch.
    """

    payload: bytes
    request: ExportTraceServiceRequest
    span_count: int
    receiver: str = ""
    llm_spans: tuple[LlmSpan, ...] = ()
    # Results already written into `payload` as events on their LLM span, by span id (hex).
    evaluations: Mapping[str, tuple[EvaluationResult, ...]] = field(default_factory=lambda: NO_EVALUATIONS)
    samples: tuple[Sample, ...] = ()  # LLM spans picked for judging, with their sampling decisions
    retrievals: tuple[Retrieval, ...] = ()  # retriever spans, whose documents are context for LLM spans
    feedback: tuple[Feedback, ...] = ()  # feedback the app recorded in span attributes

    signal: ClassVar[Signal] = "traces"

    @property
    def item_count(self) -> int:
        return self.span_count


@dataclass(frozen=True, slots=True)
class SignalBatch:
    """An accepted logs or metrics request: exporters send `payload` byte for byte; `request` (never mutated) is
    read for counting and, in logs, for the LLM content that instrumentations write into log records."""

    signal: Signal  # logs | metrics
    payload: bytes
    request: Message  # ExportLogsServiceRequest | ExportMetricsServiceRequest
    item_count: int  # log records or metric data points
    receiver: str = ""
