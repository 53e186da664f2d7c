"""OTLP trace export requests for tests, built as the protobuf messages a client would send."""

from __future__ import annotations

import itertools

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ids = itertools.count(1)


def export_request(spans: int = 3, service: str = "checkout", llm_every: int = 0,
                   attributes_per_span: int = 4) -> ExportTraceServiceRequest:
    """`spans` spans in one trace; every `llm_every`-th one (if > 0) is an OTel GenAI chat span."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = service
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "tests"
    trace_id = next(_ids).to_bytes(16, "big")
    for i in range(spans):
        span = scope.spans.add(trace_id=trace_id, span_id=next(_ids).to_bytes(8, "big"), name=f"op {i}",
                               kind=2, start_time_unix_nano=1_700_000_000_000_000_000 + i,
                               end_time_unix_nano=1_700_000_000_500_000_000 + i)
        for a in range(attributes_per_span):
            span.attributes.add(key=f"http.attribute_{a}").value.string_value = f"value {a}"
        if llm_every and i % llm_every == 0:
            attrs = span.attributes
            attrs.add(key="gen_ai.operation.name").value.string_value = "chat"
            attrs.add(key="gen_ai.provider.name").value.string_value = "openai"
            attrs.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
            attrs.add(key="gen_ai.response.model").value.string_value = "gpt-4o-mini-2024-07-18"
            attrs.add(key="gen_ai.usage.input_tokens").value.int_value = 42
            attrs.add(key="gen_ai.usage.output_tokens").value.int_value = 7
            attrs.add(key="gen_ai.input.messages").value.string_value = (
                '[{"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}]')
            attrs.add(key="gen_ai.output.messages").value.string_value = (
                '[{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}], '
                '"finish_reason": "stop"}]')
    return request


def span_ids(request: ExportTraceServiceRequest) -> list[bytes]:
    return [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
