"""The `llm_checks` processor: check results travel inside the forwarded LLM span as evaluation events."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, grpc_target, running
from tests.support.requests import export_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def with_checks(downstream: str) -> str:
    return forwarding_config(downstream).replace("      processors: [llm_extract]",
                                                 "      processors: [llm_extract, llm_checks]").replace(
        "  llm_extract:\n", "  llm_extract:\n  llm_checks:\n    max_answer_chars: 500\n")


def events_by_span(payload: bytes) -> dict[bytes, list[dict[str, object]]]:
    request = ExportTraceServiceRequest.FromString(payload)
    found = {}
    for span in (s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans):
        found[span.span_id] = [
            {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in event.attributes} | {"": event.name}
            for event in span.events]
    return found


async def test_llm_spans_carry_check_events_and_other_requests_stay_byte_identical() -> None:
    plain = export_request(spans=3).SerializeToString()
    llm = export_request(spans=3, llm_every=2)
    truncated = llm.resource_spans[0].scope_spans[0].spans[2]
    truncated.attributes.add(key="gen_ai.response.finish_reasons").value.array_value.values.add().string_value = (
        "length")
    async with CaptureServer() as downstream, running(with_checks(downstream.endpoint)) as service, \
            grpc.aio.insecure_channel(grpc_target(service)) as channel:
        await channel.unary_unary(EXPORT)(plain, timeout=10)
        await channel.unary_unary(EXPORT)(llm.SerializeToString(), timeout=10)
        await downstream.wait_for_requests(2)
        assert plain in downstream.requests
        forwarded = next(r for r in downstream.requests if r != plain)
        events = events_by_span(forwarded)
        spans = llm.resource_spans[0].scope_spans[0].spans
        assert events[spans[1].span_id] == []  # not an LLM span: untouched
        first = {e["gen_ai.evaluation.name"]: e for e in events[spans[0].span_id]}
        assert {e[""] for e in events[spans[0].span_id]} == {"gen_ai.evaluation.result"}
        assert {name: e["gen_ai.evaluation.score.label"] for name, e in first.items()} == {
            "tracejudge.check.truncated": "pass", "tracejudge.check.answer_length": "pass",
            "tracejudge.check.refusal": "pass", "tracejudge.check.pii": "pass"}
        cut = {e["gen_ai.evaluation.name"]: e for e in events[spans[2].span_id]}["tracejudge.check.truncated"]
        assert (cut["gen_ai.evaluation.score.value"], cut["gen_ai.evaluation.score.label"]) == (0.0, "fail")
        assert "token limit" in str(cut["gen_ai.evaluation.explanation"])
        # Everything else about the request is as the client sent it.
        stripped = ExportTraceServiceRequest.FromString(forwarded)
        for span in (s for rs in stripped.resource_spans for ss in rs.scope_spans for s in ss.spans):
            del span.events[:]
        assert stripped == llm
        assert metric(service, "tracejudge_checks_total", check="tracejudge.check.truncated", label="fail") == 1
