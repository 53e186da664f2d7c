"""Realistic OTLP trace export requests, serialized once before any timing starts.

Each request is one resource (a service) with traces of HTTP server, database, HTTP client and, for a given
fraction of spans, OTel GenAI `chat` spans carrying their input/output messages as JSON (~1-2 KB each).
"""

from __future__ import annotations

import json
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

__all__ = ["build_requests"]

_PROSE = ("the order service returns a summary of recent invoices for the customer account including totals taxes "
          "shipping and any refunds issued during the billing period please explain each line item in plain language "
          "and flag anything unusual such as duplicate charges or missing discounts")
_WORDS = tuple(_PROSE.split())
_MODELS = (("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-3-5-haiku", "claude-3-5-haiku"),
           ("openai", "gpt-4.1", "gpt-4.1-2025-04-14"))
_ROUTES = ("/api/orders/{id}", "/api/invoices", "/api/customers/{id}/summary", "/api/chat", "/healthz")
_SPANS_PER_TRACE = 10
_START_UNIX_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def build_requests(spans_per_request: int, llm_fraction: float, variants: int, seed: int = 1) -> list[bytes]:
    """`variants` distinct serialized requests of `spans_per_request` spans, round(fraction * n) of them LLM."""
    rng = random.Random(seed)
    return [_request(rng, spans_per_request, llm_fraction, v).SerializeToString() for v in range(variants)]


def _request(rng: random.Random, n: int, llm_fraction: float, variant: int) -> ExportTraceServiceRequest:
    llm_total = round(n * llm_fraction)
    # Spread LLM spans evenly over the request rather than bunching them in one trace.
    llm_positions = {round(i * n / llm_total) for i in range(llm_total)} if llm_total else set()
    resource_spans = ResourceSpans()
    resource_spans.resource.attributes.extend(_attrs({
        "service.name": f"checkout-{variant % 4}", "service.version": "2.14.1", "service.namespace": "shop",
        "deployment.environment.name": "production", "host.name": f"ip-10-0-{variant}-17",
        "telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "python", "telemetry.sdk.version": "1.38.0",
    }))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.fastapi"
    scope_spans.scope.version = "0.59b0"
    trace_id = root_id = b""
    for i in range(n):
        if i % _SPANS_PER_TRACE == 0:
            trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
        span = scope_spans.spans.add()
        span.trace_id = trace_id
        span.span_id = root_id if i % _SPANS_PER_TRACE == 0 else rng.randbytes(8)
        if i % _SPANS_PER_TRACE:
            span.parent_span_id = root_id
        start = _START_UNIX_NS + variant * 10**9 + i * 1_000_000
        span.start_time_unix_nano = start
        span.end_time_unix_nano = start + rng.randint(200_000, 900_000_000)
        if i in llm_positions:
            _llm_span(rng, span)
        elif i % _SPANS_PER_TRACE == 0:
            _server_span(rng, span)
        elif i % 2:
            _db_span(rng, span)
        else:
            _client_span(rng, span)
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def _server_span(rng: random.Random, span: Span) -> None:
    route = rng.choice(_ROUTES)
    path = route.replace("{id}", str(rng.randint(1, 10**6)))
    span.name, span.kind = f"GET {route}", Span.SPAN_KIND_SERVER
    status = rng.choice((200, 200, 200, 201, 404, 500))
    span.attributes.extend(_attrs({
        "http.request.method": "GET", "http.route": route, "url.path": path,
        "url.scheme": "https", "http.response.status_code": status, "server.address": "shop.example.com",
        "server.port": 443, "network.protocol.version": "1.1", "client.address": f"10.1.{rng.randint(0, 255)}.9",
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    }))
    if status >= 500:
        span.status.code = Status.STATUS_CODE_ERROR


def _db_span(rng: random.Random, span: Span) -> None:
    table = rng.choice(("orders", "invoices", "customers"))
    span.name, span.kind = f"SELECT shop.{table}", Span.SPAN_KIND_CLIENT
    span.attributes.extend(_attrs({
        "db.system.name": "postgresql", "db.namespace": "shop", "db.collection.name": table,
        "db.operation.name": "SELECT", "db.query.text": f"SELECT id, total, status FROM {table} WHERE customer_id = $1",
        "db.response.returned_rows": rng.randint(0, 200), "server.address": "db-primary.internal",
        "server.port": 5432, "network.peer.address": "10.0.3.21",
    }))


def _client_span(rng: random.Random, span: Span) -> None:
    span.name, span.kind = "POST", Span.SPAN_KIND_CLIENT
    span.attributes.extend(_attrs({
        "http.request.method": "POST", "url.full": "https://payments.internal/v2/authorize",
        "server.address": "payments.internal", "server.port": 443, "http.response.status_code": 200,
        "http.request.body.size": rng.randint(200, 4000), "http.response.body.size": rng.randint(100, 900),
        "network.protocol.version": "2", "peer.service": "payments",
    }))


def _llm_span(rng: random.Random, span: Span) -> None:
    provider, model, response_model = rng.choice(_MODELS)
    span.name, span.kind = f"chat {model}", Span.SPAN_KIND_CLIENT
    question, answer = _text(rng, 160), _text(rng, 150)
    input_messages = [
        {"role": "user", "parts": [{"type": "text", "content": _text(rng, 40)}]},
        {"role": "assistant", "parts": [{"type": "text", "content": _text(rng, 30)}]},
        {"role": "user", "parts": [{"type": "text", "content": question}]},
    ]
    output_messages = [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]
    span.attributes.extend(_attrs({
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
        "gen_ai.response.model": response_model, "gen_ai.response.id": f"chatcmpl-{rng.randbytes(12).hex()}",
        "gen_ai.request.temperature": 0.2, "gen_ai.usage.input_tokens": rng.randint(300, 900),
        "gen_ai.usage.output_tokens": rng.randint(80, 300), "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You are a billing assistant."}]),
        "gen_ai.input.messages": json.dumps(input_messages), "gen_ai.output.messages": json.dumps(output_messages),
        "server.address": "api.openai.com" if provider == "openai" else "api.anthropic.com",
    }))


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _attrs(values: dict[str, str | int | float | list[str]]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_any(value)) for key, value in values.items()]


def _any(value: str | int | float | list[str]) -> AnyValue:
    if isinstance(value, bool):
        raise TypeError("booleans are not used in these payloads")
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
