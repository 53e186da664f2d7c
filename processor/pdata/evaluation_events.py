"""Writes evaluation results into traces as `gen_ai.evaluation.result` events.

Deterministic checks go onto the LLM span itself, before it is forwarded (`with_evaluation_events`): this is where a
forwarded request stops being the client's bytes, so only requests holding evaluated LLM spans pass through here.
Judge results arrive after the span has left, so each judged LLM span gets an evaluation span of its own
(`evaluation_request`): same trace, parent = the judged span, one event per metric.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.otlp_wire import append_to_spans

EVENT_NAME = "gen_ai.evaluation.result"
EVALUATION_SPAN_NAME = "tracejudge.evaluation"
SERVICE_NAME = "tracejudge"
SCOPE_NAME = "tracejudge.judge"
PHOENIX_PROJECT = "openinference.project.name"  # the judged span's, copied onto its evaluation span's resource

# A plain attribute value for an OTLP attribute: str, bool, int or float.
Plain = str | bool | int | float


@dataclass(frozen=True, slots=True)
class JudgedSpan:
    """The results for one judged LLM span, and what makes them attributable and weightable."""

    trace_id: str  # hex, of the judged span's trace
    span_id: str  # hex, of the judged span: the evaluation span's parent
    results: tuple[EvaluationResult, ...]
    start_unix_nano: int  # the evaluation span's extent: within the judged span's, so judging never stretches a trace
    end_unix_nano: int
    response_id: str = ""
    attributes: Mapping[str, Plain] = field(default_factory=dict)  # tracejudge.* on the evaluation span
    # per metric name: tracejudge.* attributes of its event (tier, judge model, confidence, ...)
    result_attributes: Mapping[str, Mapping[str, Plain]] = field(default_factory=dict)
    version: str = ""  # the judge version: with the ids, it makes the evaluation span id
    # resource attributes besides service.name, e.g. openinference.project.name: Phoenix files a trace under the
    # project of its first span, so an evaluation span arriving first must name the judged span's project
    resource: Mapping[str, Plain] = field(default_factory=dict)

    @property
    def evaluation_span_id(self) -> bytes:
        """Deterministic: judging the same span again with the same judge version (after a crash, say) yields the
        same span id, so a backend that deduplicates on span id keeps one."""
        key = f"{self.trace_id}/{self.span_id}/{self.version}/{','.join(sorted(r.name for r in self.results))}"
        return hashlib.blake2b(key.encode(), digest_size=8).digest()


def with_evaluation_events(payload: bytes, evaluations: Mapping[str, tuple[EvaluationResult, ...]],
                           response_ids: Mapping[str, str], times: Mapping[str, int]) -> bytes:
    """`payload` with one event per result appended to each evaluated span (keyed by hex span id), at `times[span
    id]` (its end), written into the bytes: the request is not parsed and re-encoded, and every other byte stays."""
    additions = {}
    for key, results in evaluations.items():
        events = Span()  # only its events are set: its serialization is exactly their fields
        for result in results:
            add_event(events, result, response_ids.get(key, ""), times.get(key, 0))
        additions[bytes.fromhex(key)] = events.SerializeToString()
    return append_to_spans(payload, additions)


def evaluation_request(judged: Sequence[JudgedSpan], scope_version: str = "") -> ExportTraceServiceRequest:
    """One OTLP request holding an evaluation span per judged span, from service `tracejudge`."""
    request = ExportTraceServiceRequest()
    scopes: dict[tuple[tuple[str, Plain], ...], ScopeSpans] = {}
    for item in judged:
        key = tuple(sorted(item.resource.items()))
        if key not in scopes:
            resource_spans = request.resource_spans.add()
            for name, value in (("service.name", SERVICE_NAME), *key):
                set_value(resource_spans.resource.attributes.add(key=name), value)
            scopes[key] = resource_spans.scope_spans.add()
            scopes[key].scope.name = SCOPE_NAME
            scopes[key].scope.version = scope_version
        span = scopes[key].spans.add(
            trace_id=bytes.fromhex(item.trace_id), span_id=item.evaluation_span_id,
            parent_span_id=bytes.fromhex(item.span_id), name=EVALUATION_SPAN_NAME, kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=item.start_unix_nano, end_time_unix_nano=item.end_unix_nano)
        for name, value in item.attributes.items():
            set_value(span.attributes.add(key=name), value)
        for result in item.results:
            event = add_event(span, result, item.response_id, item.end_unix_nano)
            for name, value in item.result_attributes.get(result.name, {}).items():
                set_value(event.attributes.add(key=name), value)
    return request


def add_event(span: Span, result: EvaluationResult, response_id: str, time_unix_nano: int) -> Span.Event:
    event = span.events.add(name=EVENT_NAME, time_unix_nano=time_unix_nano)
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
    return event


def set_value(attribute: KeyValue, value: Plain) -> None:
    if isinstance(value, bool):
        attribute.value.bool_value = value
    elif isinstance(value, int):
        attribute.value.int_value = value
    elif isinstance(value, float):
        attribute.value.double_value = value
    else:
        attribute.value.string_value = value
