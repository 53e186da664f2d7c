"""Feedback in span attributes: what no app sends on purpose is skipped or bounded, never an error for the request."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracejudge.processor.processors.llm_extract.feedback_attributes import FeedbackAttributes, FeedbackReader


def request_with(*spans: tuple[int, str | None]) -> ExportTraceServiceRequest:
    """One span per (end time, thumbs); thumbs None: a map where text belongs."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for n, (end, thumbs) in enumerate(spans, start=1):
        span = scope.spans.add(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name="feedback",
                               start_time_unix_nano=1, end_time_unix_nano=end)
        value = span.attributes.add(key="tracejudge.feedback.thumbs").value
        if thumbs is None:
            value.kvlist_value.values.add(key="a").value.string_value = "b"
        else:
            value.string_value = thumbs
    return request


def test_a_time_past_signed_64_bits_is_bounded_and_odd_values_are_skipped() -> None:
    request = request_with((2**64 - 1, "down"), (5, None), (7, "up"))
    found = FeedbackReader(FeedbackAttributes()).read(request, request.SerializeToString())
    assert [(f.trace_id[-1], f.thumbs, f.time_unix_nano) for f in found] == [("1", -1, 2**63 - 1), ("3", 1, 7)]
