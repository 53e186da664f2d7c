"""LLM content where each content-capture mode of the official OpenAI instrumentation puts it: an app exports its
traces and logs to tracejudge (the shipped config, everything judged), which judges the LLM span in every mode —
with the content from the span, or from the `gen_ai.client.inference.operation.details` log record joined to it,
whichever of span and record arrives first — and forwards the logs unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.openai_server import Completion, OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.shipped import environment, with_exporter
from tests.support.waiting import eventually
from tracejudge.processor.component.decisions import (
    AWAITING_CONTENT,
    EXTRACTED,
    JUDGED,
    NO_CONTENT,
    UNJUDGED,
    Decision,
)

REPO = Path(__file__).resolve().parents[2]
DETAILS = "gen_ai.client.inference.operation.details"
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."


def run_app(base_url: str, endpoint: str, first: str) -> None:
    """In a fresh interpreter (the instrumentor patches `openai` process-wide): one chat call, its spans and log
    records exported over OTLP/gRPC by the SDK's batch processors, `first` ("spans" or "logs") flushed first."""
    import openai
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "events-app"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{endpoint}",
                                                                           insecure=True)))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{endpoint}",
                                                                                     insecure=True)))
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": QUESTION}])
    providers = [tracer_provider, logger_provider]
    for provider in providers if first == "spans" else providers[::-1]:
        provider.force_flush()
    for provider in providers:
        provider.shutdown()


async def _run_app(base_url: str, endpoint: str, mode: str, first: str) -> None:
    env = dict(os.environ) | {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": mode}
    code = "import sys; from tests.e2e.test_log_content import run_app; run_app(*sys.argv[1:])"
    app = await asyncio.create_subprocess_exec(sys.executable, "-c", code, base_url, endpoint, first, cwd=REPO,
                                               env=env, stdout=asyncio.subprocess.PIPE,
                                               stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(app.communicate(), timeout=120)
    assert app.returncode == 0, output.decode(errors="replace")


def forwarded_spans(downstream: CaptureServer) -> list[Span]:
    return [span for raw in downstream.requests for rs in ExportTraceServiceRequest.FromString(raw).resource_spans
            for ss in rs.scope_spans for span in ss.spans]


@pytest.mark.parametrize(("mode", "first", "source"), [
    ("SPAN_ONLY", "spans", "span attributes"),
    ("EVENT_ONLY", "logs", f"log events ({DETAILS})"),  # the content waits for its span
    ("EVENT_ONLY", "spans", f"log events ({DETAILS})"),  # the span waits for its content
    ("SPAN_AND_EVENT", "logs", "span attributes"),  # the span's own content; the record is not needed
])
async def test_the_llm_span_is_judged_with_content_from_where_the_mode_put_it(
        tmp_path: Path, mode: str, first: str, source: str) -> None:
    text = with_exporter("otlp/capture", "    endpoint: {endpoint}\n    tls:\n      insecure: true\n",
                         ("traces", "logs"))
    environ = environment() | {"TRACEJUDGE_SAMPLE_RATE": "1", "TRACEJUDGE_DATA_DIR": str(tmp_path / "data"),
                               "TRACEJUDGE_MEMORY_LIMIT_MIB": "65536"}  # the limit is for a process of its own
    async with OpenAiServer(Completion(content=ANSWER)) as provider, CaptureServer() as downstream, \
            running(text.replace("{endpoint}", downstream.endpoint), environ) as service:
        await _run_app(provider.base_url, grpc_target(service), mode, first)
        await downstream.wait_for_requests(1)
        (llm,) = [span for span in forwarded_spans(downstream) if span.name.startswith("chat")]
        trace_id = llm.trace_id.hex()

        async def decisions() -> list[Decision]:
            return await service.decisions.for_trace(trace_id)  # type: ignore[attr-defined, no-any-return]

        async def judged() -> bool:  # faithfulness is unjudged (no_context): this app retrieves nothing
            return {d.metric for d in await decisions() if d.decision.startswith((JUDGED, UNJUDGED))} == {
                "faithfulness", "relevancy"}

        await eventually(judged, timeout_s=60, what="both metrics judged")
        records = [d for d in await decisions() if d.span_id == llm.span_id.hex()]
        (relevancy,) = [d for d in records if d.metric == "relevancy"]
        assert relevancy.decision == JUDGED and json.loads(relevancy.detail)["label"] == "pass"
        (extracted,) = [d for d in records if d.decision == EXTRACTED]
        assert json.loads(extracted.detail) == {"content": source}
        assert NO_CONTENT not in {d.decision for d in records}
        assert (AWAITING_CONTENT in {d.decision for d in records}) == (mode == "EVENT_ONLY" and first == "spans")
        # the judge's evaluation span is the LLM span's child, as whatever the content's source
        await eventually(lambda: [s for s in forwarded_spans(downstream) if s.name == "tracejudge.evaluation"],
                         timeout_s=30, what="the evaluation span downstream")
        evaluation = [s for s in forwarded_spans(downstream) if s.parent_span_id == llm.span_id]
        assert {e.name for s in evaluation for e in s.events} == {"gen_ai.evaluation.result"}
        if mode != "SPAN_ONLY":  # the log record went on to the logs backend, unchanged
            await downstream.wait_for_requests(1, signal="logs")
            logs = ExportLogsServiceRequest.FromString(downstream.received["logs"][0])
            (record,) = [r for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
            assert (record.event_name, record.span_id) == (DETAILS, llm.span_id)
