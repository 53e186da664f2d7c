"""Hypothesis strategies for what a client can send: OTLP trace requests whose LLM-convention attributes hold values
of every type (nested, huge, at numeric edges), mutated bytes of them, OTLP/JSON, and EvalService bodies.

The `fuzz` profile (HYPOTHESIS_PROFILE=fuzz, `make fuzz`) explores many more examples than the bounded,
derandomised `ci` one `make test` runs."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

settings.register_profile("ci", max_examples=60, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=1500, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Keys the conventions read: values of the wrong type or shape must never fail a request.
LLM_KEYS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.request.model",
            "gen_ai.response.model", "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
            "gen_ai.output.type", "gen_ai.usage.input_tokens", "gen_ai.response.finish_reasons", "gen_ai.prompt",
            "gen_ai.completion", "gen_ai.prompt.0.content", "gen_ai.completion.0.content", "gen_ai.prompt.0.role",
            "llm.request.type", "traceloop.span.kind", "openinference.span.kind", "input.value", "output.value",
            "llm.input_messages.0.message.content", "llm.output_messages.0.message.content",
            "llm.invocation_parameters", "retrieval.documents.0.document.content", "langfuse.observation.type",
            "langfuse.observation.input", "langfuse.observation.output", "tracejudge.feedback.thumbs",
            "tracejudge.feedback.rating", "tracejudge.feedback.comment", "service.name", "gen_ai.prompt.version",
            "openinference.project.name", "gen_ai.conversation.id")

_JSONISH = st.sampled_from(['[{"role": "user", "content": "hi"}]', '[{"role": "assistant", "parts": [{"type": '
                            '"text", "content": "x"}]}]', "[" * 3000, "{" * 50, "[]", "{}", "null", '"x"', "1e999",
                            '[{"parts": null}]', '[{"role": 1, "content": [1, 2]}]', '{"response_format": 1}'])
_TEXT = st.one_of(st.text(max_size=200), _JSONISH, st.builds(lambda n: "a" * n + "@", st.integers(0, 20_000)))
_INT = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 2**63 - 1, -(2**63)]))


def _scalar(kind_and_value: tuple[str, object]) -> AnyValue:
    kind, value = kind_and_value
    return AnyValue(**{kind: value})  # type: ignore[arg-type]


def _array(values: list[AnyValue]) -> AnyValue:
    result = AnyValue()
    result.array_value.values.extend(values)
    return result


def _kvlist(values: dict[str, AnyValue]) -> AnyValue:
    result = AnyValue()
    for key, value in values.items():
        result.kvlist_value.values.add(key=key).value.CopyFrom(value)
    return result


any_values = st.recursive(
    st.one_of(st.tuples(st.just("string_value"), _TEXT), st.tuples(st.just("int_value"), _INT),
              st.tuples(st.just("double_value"), st.floats(allow_nan=True, allow_infinity=True)),
              st.tuples(st.just("bool_value"), st.booleans()),
              st.tuples(st.just("bytes_value"), st.binary(max_size=32))).map(_scalar),
    lambda children: st.one_of(st.lists(children, max_size=4).map(_array),
                               st.dictionaries(st.sampled_from(["role", "content", "parts", "type", "text", "0"]),
                                               children, max_size=4).map(_kvlist)),
    max_leaves=12)

_TIME = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1,
                                                               1_700_000_000_000_000_000]))
_ID16 = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
_ID8 = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A protobuf ExportTraceServiceRequest: valid OTLP whatever its attribute values, times and ids."""
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        resource = request.resource_spans.add()
        resource.resource.attributes.add(key="service.name").value.CopyFrom(draw(any_values))
        for _ in range(draw(st.integers(1, 3))):
            start = draw(_TIME)
            span = resource.scope_spans.add().spans.add(
                trace_id=draw(_ID16), span_id=draw(_ID8), parent_span_id=draw(st.one_of(st.just(b""), _ID8)),
                name=draw(st.text(max_size=20)), kind=draw(st.integers(0, 5)), start_time_unix_nano=start,
                end_time_unix_nano=draw(st.one_of(st.just(min(start + 1, 2**64 - 1)), _TIME)))
            span.status.code = draw(st.integers(0, 2))
            for key in draw(st.lists(st.sampled_from(LLM_KEYS), min_size=1, max_size=8, unique=True)):
                span.attributes.add(key=key).value.CopyFrom(draw(any_values))
            if draw(st.booleans()):
                event = span.events.add(name=draw(st.sampled_from(["gen_ai.content.prompt", "exception", "x"])),
                                        time_unix_nano=draw(_TIME))
                event.attributes.add(key=draw(st.sampled_from(LLM_KEYS))).value.CopyFrom(draw(any_values))
    return request.SerializeToString()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A request's bytes with flips, cuts and insertions: mostly not protobuf any more."""
    body = bytearray(draw(requests()))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(body) - 1)))
        operation = draw(st.integers(0, 2))
        if operation == 0 and body:
            body[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == 1:
            del body[at:at + draw(st.integers(1, 16))]
        else:
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(body)


_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                               st.text(max_size=30)),
                     lambda children: st.one_of(st.lists(children, max_size=4),
                                                st.dictionaries(st.text(max_size=12), children, max_size=4)),
                     max_leaves=20)


@st.composite
def otlp_json(draw: st.DrawFn) -> bytes:
    """OTLP/JSON-shaped documents with wrong types in any place, or JSON nested far too deep."""
    if draw(st.integers(0, 9)) == 0:
        return b"[" * draw(st.integers(1, 200_000))
    span = {"traceId": draw(st.one_of(st.text(max_size=40), _JSON)), "spanId": draw(st.one_of(st.text(max_size=20),
                                                                                              _JSON)),
            "name": draw(_JSON), "startTimeUnixNano": draw(st.one_of(st.text(max_size=25), _JSON)),
            "attributes": draw(st.one_of(_JSON, st.lists(st.fixed_dictionaries(
                {"key": st.sampled_from(LLM_KEYS), "value": st.one_of(_JSON, st.fixed_dictionaries(
                    {"stringValue": st.one_of(_TEXT, _JSON)}))}), max_size=5)))}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]} if draw(st.booleans()) else draw(_JSON)
    return json.dumps(document).encode()


@st.composite
def feedback_bodies(draw: st.DrawFn) -> bytes:
    """EvalService POST /v1/feedback bodies: right and wrong shapes, types and values."""
    record = draw(st.fixed_dictionaries({}, optional={
        "trace_id": st.one_of(st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32), _JSON),
        "span_id": st.one_of(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16), _JSON),
        "thumbs": st.one_of(st.sampled_from([1, -1, 0]), _JSON), "rating": _JSON,
        "rating_max": _JSON, "time_unix_nano": st.one_of(st.integers(-(2**70), 2**70), _JSON),
        "comment": _JSON, "edited_text": _JSON, "labels": _JSON, "regenerated": _JSON, "source": _JSON}))
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return b"[" * draw(st.integers(1, 100_000))
    if choice == 1:
        return draw(st.binary(max_size=200))
    document = {"feedback": [record]} if choice < 5 else draw(_JSON)
    return json.dumps(document).encode()
