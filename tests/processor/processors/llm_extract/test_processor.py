"""A span whose attributes break extraction is left out, counted and recorded; its request is forwarded as sent."""

from __future__ import annotations

import grpc

from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, grpc_target, running
from tests.support.requests import export_request, span_ids

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def test_spans_that_break_extraction_are_left_out_and_their_request_is_forwarded() -> None:
    request = export_request(spans=4, llm_every=1)
    spans = request.resource_spans[0].scope_spans[0].spans
    as_map = spans[1].attributes.add(key="llm.request.type").value.kvlist_value.values.add(key="a")
    as_map.value.string_value = "a map where text belongs"
    for kv in spans[2].attributes:
        if kv.key == "gen_ai.input.messages":
            kv.value.string_value = "[" * 5000  # nests deeper than the JSON parser's stack
    payload = request.SerializeToString()
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        async with grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(payload, timeout=10)  # OK: raises on any other status
        await downstream.wait_for_requests(1)
        assert downstream.requests == [payload]
        trace = spans[0].trace_id.hex()
        records = {(d.span_id, d.decision) for d in await service.decisions.for_trace(trace)}
        ids = [s.hex() for s in span_ids(request)]
        assert (ids[1], "unprocessable: llm_extract: TypeError") in records
        assert (ids[2], "unprocessable: llm_extract: RecursionError") in records
        assert {(ids[0], "extracted"), (ids[3], "extracted")} <= records
        assert metric(service, "tracejudge_spans_unprocessable_total", stage="llm_extract", error="TypeError") == 1
        assert metric(service, "tracejudge_llm_spans_extracted_total", convention="gen_ai") == 2
