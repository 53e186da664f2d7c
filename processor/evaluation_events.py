"""Writes evaluation results into a request as `gen_ai.evaluation.result` events on the spans they judge.

This is where a forwarded request stops being the client's bytes: only requests holding evaluated LLM spans pass
through here; everything else is forwarded as it came.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from .evaluation import EvaluationResult

EVENT_NAME = "gen_ai.evaluation.result"


def with_evaluation_events(payload: bytes, evaluations: Mapping[str, tuple[EvaluationResult, ...]],
                           response_ids: Mapping[str, str]) -> tuple[ExportTraceServiceRequest, bytes]:
    """A new request (parsed from `payload`, never the shared one) with one event per result on each evaluated
    span (keyed by hex span id), and its serialization."""
    request = ExportTraceServiceRequest.FromString(payload)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                key = span.span_id.hex()
                for result in evaluations.get(key, ()):
                    _add_event(span, result, response_ids.get(key, ""))
    return request, request.SerializeToString()


def _add_event(span: Span, result: EvaluationResult, response_id: str) -> None:
    event = span.events.add(name=EVENT_NAME, time_unix_nano=span.end_time_unix_nano or span.start_time_unix_nano)
    attributes = event.attributes
    attributes.add(key="gen_ai.evaluation.name").value.string_value = result.name
    if result.score is not None:
        attributes.add(key="gen_ai.evaluation.score.value").value.double_value = result.score
    if result.label:
        attributes.add(key="gen_ai.evaluation.score.label").value.string_value = result.label
    if result.explanation:
        attributes.add(key="gen_ai.evaluation.explanation").value.string_value = result.explanation
    if response_id:
        attributes.add(key="gen_ai.response.id").value.string_value = response_id
    if result.error_type:
        attributes.add(key="error.type").value.string_value = result.error_type
