"""Span byte ranges read from the wire format agree with the protobuf parser, so the extractor's shortcut through
them finds exactly the LLM spans a full walk finds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.otlp_strategies import requests
from tests.support.requests import export_request
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.evaluation_events import add_event, with_evaluation_events
from tracejudge.processor.pdata.extract import Extractor
from tracejudge.processor.pdata.otlp_wire import span_ranges, spans_containing


def mixed_request() -> ExportTraceServiceRequest:
    """Several resources and scopes, schema URLs and events, LLM spans here and there."""
    request = ExportTraceServiceRequest()
    for i in range(3):
        request.resource_spans.extend(export_request(spans=5 + i, llm_every=3 - i % 2).resource_spans)
        request.resource_spans[-1].schema_url = "https://opentelemetry.io/schemas/1.26.0"
        scope = request.resource_spans[-1].scope_spans.add()
        scope.scope.name = "second scope"
        span = scope.spans.add(trace_id=b"\x01" * 16, span_id=bytes([i + 1]) * 8, name="log gen_ai. mention")
        span.events.add(name="gen_ai.choice", time_unix_nano=5)
    return request


def test_span_ranges_match_the_parser() -> None:
    request = mixed_request()
    payload = request.SerializeToString()
    parsed = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    ranges = span_ranges(payload)
    assert [Span.FromString(payload[start:end]) for start, end in ranges] == parsed


def test_spans_containing_finds_the_marked_spans_only() -> None:
    request = export_request(spans=6, llm_every=3)
    assert spans_containing(request.SerializeToString(), [b"gen_ai."]) == {0, 3}
    assert spans_containing(request.SerializeToString(), [b"no such marker"]) == set()


def test_extract_with_payload_equals_the_full_walk() -> None:
    request = mixed_request()
    extractor = Extractor()
    full = extractor.extract(request)
    assert len(full) == 2 + 3 + 3
    assert extractor.extract(request, request.SerializeToString()) == full


def test_malformed_framing_raises() -> None:
    with pytest.raises((ValueError, IndexError)):
        span_ranges(b"\x0a\x05\x12\x09")


@given(requests(), st.data())
def test_events_written_into_the_bytes_are_what_parsing_and_re_encoding_would_give(body: bytes,
                                                                                   data: st.DataObject) -> None:
    request = ExportTraceServiceRequest.FromString(body)
    spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    chosen = data.draw(st.lists(st.sampled_from(spans), max_size=3)) if spans else []
    result = EvaluationResult("tracejudge.check.pii", 1.0, "pass", "clean")
    evaluations = {span.span_id.hex(): (result,) for span in chosen}
    times = {span.span_id.hex(): span.end_time_unix_nano for span in chosen}
    written = with_evaluation_events(body, evaluations, {}, times)

    expected = ExportTraceServiceRequest.FromString(body)
    for span in (s for rs in expected.resource_spans for ss in rs.scope_spans for s in ss.spans):
        for evaluated in evaluations.get(span.span_id.hex(), ()):
            add_event(span, evaluated, "", times[span.span_id.hex()])  # (spans may share an id: one time each)
    assert ExportTraceServiceRequest.FromString(written) == expected
    if not evaluations:
        assert written is body  # a request without evaluated spans stays the client's bytes
