"""Extraction of the spans that the real OpenAI instrumentations emit for real `openai` calls to a loopback server.

Instrumentors patch the `openai` module for the whole process, so each scenario runs in a fresh interpreter
(`run_scenario`), which writes the spans as the SDK's own OTLP encoder serialises them.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.openai_server import Completion, OpenAiServer
from tracejudge.processor.extract import Extractor, may_contain_llm
from tracejudge.processor.llm_span import LlmSpan, Message

REPO = Path(__file__).resolve().parents[2]
SERVICE = "checkout"
ANSWER = Completion(
    content="Paris is the capital of France.",
    id="chatcmpl-canned-0001",
    model="gpt-4o-mini-2024-07-18",
    system_fingerprint="fp_canned01",
    prompt_tokens=12,
    completion_tokens=7,
)
CHAT: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Capital of France?"},
]
STREAMED: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Stream it"}]

INSTRUMENTORS = {
    "openai_v2": "opentelemetry.instrumentation.openai_v2",
    "openinference": "openinference.instrumentation.openai",
    "openllmetry": "opentelemetry.instrumentation.openai",
}
# Each library's own switch for content capture, as read from its source.
CONTENT_ENV = {
    ("openai_v2", True): {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"},
    ("openai_v2", False): {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "no_content"},
    ("openinference", True): {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"},
    ("openinference", False): {"OPENINFERENCE_HIDE_INPUTS": "true", "OPENINFERENCE_HIDE_OUTPUTS": "true"},
    ("openllmetry", True): {"TRACELOOP_TRACE_CONTENT": "true"},
    ("openllmetry", False): {"TRACELOOP_TRACE_CONTENT": "false"},
}
_SWITCHES = {name for env in CONTENT_ENV.values() for name in env} | {"OTEL_SEMCONV_STABILITY_OPT_IN"}


def run_scenario(library: str, base_url: str, out_path: str) -> None:
    """In a fresh interpreter: instrument, make one plain and one streamed chat call, write the OTLP request."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    importlib.import_module(INSTRUMENTORS[library]).OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    with provider.get_tracer("app").start_as_current_span("handle request"):
        client.chat.completions.create(model="gpt-4o-mini", messages=CHAT, temperature=0.2)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=STREAMED,
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
    Path(out_path).write_bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())


async def _capture(library: str, content: bool, tmp_path: Path) -> tuple[bytes, list[dict[str, Any]]]:
    out = tmp_path / f"{library}.otlp"
    env = {k: v for k, v in os.environ.items() if k not in _SWITCHES} | CONTENT_ENV[(library, content)]
    code = "import sys; from tests.processor.test_extract_instrumented import run_scenario; run_scenario(*sys.argv[1:])"
    async with OpenAiServer(ANSWER) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, library, server.base_url, str(out),
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, output.decode(errors="replace")
    return out.read_bytes(), server.requests


def _metadata(span: LlmSpan) -> dict[str, object]:
    return {
        "convention": span.convention,
        "operation": span.operation,
        "provider": span.provider,
        "request_model": span.request_model,
        "response_model": span.response_model,
        "model_fingerprint": span.model_fingerprint,
        "response_id": span.response_id,
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "finish_reasons": span.finish_reasons,
        "service": span.service,
        "status": span.status,
    }


COMMON = {
    "provider": "openai",
    "request_model": "gpt-4o-mini",
    "response_model": "gpt-4o-mini-2024-07-18",
    "response_id": "chatcmpl-canned-0001",
    "input_tokens": 12,
    "output_tokens": 7,
    "finish_reasons": ("stop",),
    "service": SERVICE,
}
# (plain call, streamed call) metadata, where each library departs from COMMON.
EXPECTED: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    # opentelemetry-instrumentation-openai-v2 2.4b0: no fingerprint on streamed calls, and no finish_reasons
    # attribute either (the finish reason is only inside gen_ai.output.messages, so absent with content off).
    "openai_v2": (
        {"convention": "gen_ai", "operation": "chat", "model_fingerprint": "fp_canned01", "status": "unset"},
        {"convention": "gen_ai", "operation": "chat", "model_fingerprint": "", "status": "unset"},
    ),
    # OpenInference keeps the response id and fingerprint only inside output.value (the response body).
    "openinference": (
        {"convention": "openinference", "operation": "", "model_fingerprint": "fp_canned01", "status": "ok"},
        {"convention": "openinference", "operation": "", "model_fingerprint": "fp_canned01", "status": "ok"},
    ),
    # OpenLLMetry 0.62 writes OTel GenAI attributes (no traceloop.* / llm.request.type on these spans any more).
    "openllmetry": (
        {"convention": "gen_ai", "operation": "chat", "model_fingerprint": "fp_canned01", "status": "unset"},
        {"convention": "gen_ai", "operation": "chat", "model_fingerprint": "", "status": "ok"},
    ),
}


def _expected(library: str, content: bool) -> list[dict[str, object]]:
    expected = [COMMON | EXPECTED[library][0], COMMON | EXPECTED[library][1]]
    if not content and library == "openai_v2":
        expected[1]["finish_reasons"] = ()
    if not content and library == "openinference":  # both hidden inside the redacted output.value
        for metadata in expected:
            metadata.update(response_id="", model_fingerprint="")
    return expected


@pytest.mark.parametrize("library", sorted(INSTRUMENTORS))
async def test_real_instrumentation_with_content_yields_messages_and_metadata(library: str, tmp_path: Path) -> None:
    payload, requests = await _capture(library, True, tmp_path)
    assert requests[1]["stream_options"] == {"include_usage": True}
    assert may_contain_llm(payload)

    spans = _extract(payload)

    assert [_metadata(s) for s in spans] == _expected(library, True)
    plain, streamed = spans
    assert plain.input_messages == (Message("system", "Be brief."), Message("user", "Capital of France?"))
    assert plain.output_messages == (Message("assistant", ANSWER.content),)
    assert streamed.input_messages == (Message("user", "Stream it"),)
    assert streamed.output_text == ANSWER.content
    assert plain.has_content and streamed.has_content


@pytest.mark.parametrize("library", sorted(INSTRUMENTORS))
async def test_real_instrumentation_without_content_still_yields_records(library: str, tmp_path: Path) -> None:
    payload, _ = await _capture(library, False, tmp_path)
    assert may_contain_llm(payload)

    spans = _extract(payload)

    assert [_metadata(s) for s in spans] == _expected(library, False)
    for span in spans:
        assert not span.has_content
        assert span.input_messages == () and span.input_text == ""
        assert span.latency_s > 0


def _extract(payload: bytes) -> tuple[LlmSpan, ...]:
    """The LLM spans, checked to be the two calls made under the app's own (non-LLM) span."""
    request = ExportTraceServiceRequest.FromString(payload)
    all_spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    parent = next(s for s in all_spans if s.name == "handle request")
    spans = Extractor().extract(request)
    assert len(spans) == 2
    assert {s.parent_span_id for s in spans} == {parent.span_id.hex()}
    assert {s.trace_id for s in spans} == {parent.trace_id.hex()}
    assert all(s.attributes["service.name"] == SERVICE for s in spans)
    return spans
