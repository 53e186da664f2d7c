"""End to end: a real OTel SDK application, instrumented with the official OpenAI instrumentation, calls a loopback
model whose answers get worse after the provider silently changes its fingerprint (same model name, same prompt
version). The pipeline runs from YAML, judges with a scripted loopback judge, and must send a `tracejudge.alert`
span with cause `model_change` and links to judged traces to the capture backend; the same traffic without the
change must raise no alert. Then `tracejudge series / alerts / replay` read the store the run left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.openai_server import Completion, OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.process import TRACEJUDGE, free_port
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
GOOD, BAD = "Paris is the capital of France.", "Lyon is the capital of France."
QUESTIONS = ["What is the capital of France?", "Which city is France's capital?", "Name the French capital.",
             "Where does the French government sit?", "Capital of France, please?"]
CALLS, CHANGE_AT = 160, 110  # warm-up is 100 scores: the reference is set before the change


def run_app(base_url: str, endpoint: str, calls: int) -> None:
    """In a fresh interpreter (the instrumentor patches `openai` process-wide): a RAG-ish app making `calls` chat
    calls, exporting its spans with the SDK's OTLP/gRPC exporter."""
    import openai
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "rag-app", "app.prompt.version": "v7",
                                                        "openinference.project.name": "rag-project"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{endpoint}", insecure=True)))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    tracer = provider.get_tracer("rag-app")
    for i in range(calls):
        with tracer.start_as_current_span("answer question"):
            client.chat.completions.create(model="gpt-4o", messages=[
                {"role": "system", "content": "Answer from general knowledge, in one sentence."},
                {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
    provider.shutdown()


def model(change_at: int) -> Any:
    """The provider: one bad answer in ten; from call `change_at` on, fingerprint fp_b and every other answer bad."""
    calls = 0

    def answer(request: dict[str, Any]) -> Completion:
        nonlocal calls
        calls += 1
        changed = calls > change_at
        bad = calls % 2 == 0 if changed else calls % 10 == 0
        return Completion(content=BAD if bad else GOOD, model="gpt-4o-2024-08-06",
                          system_fingerprint="fp_b" if changed else "fp_a")
    return answer


def judge(request: dict[str, Any]) -> Completion:
    """A scripted judge: the right capital is relevant and good, the wrong one is not."""
    response = json.loads(request["messages"][-1]["content"])["response"]
    good = "Paris" in response
    return Completion(content=json.dumps({"score": 0.9 if good else 0.1, "label": "pass" if good else "fail",
                                          "explanation": "scripted"}), system_fingerprint=None)


def config(downstream: str, judge_url: str, data: Path, webhook: str) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  llm_extract:
    attributes:
      prompt_version: app.prompt.version
  sampler:
    rate: 1.0
  judge_queue:
    storage: file_storage
    metrics: [relevancy]
    decision_wait: 0s
    max_decision_wait: 0s
    workers: {{count: 1, poll_interval: 20ms}}
    judges:
      local:
        judge: openai
        server:
          base_url: "{judge_url}"
          model: judge-model
          max_retries: 0
    stats:
      warmup: 100
      webhook: {{url: "{webhook}"}}
      trace_links:
        jaeger: "http://jaeger.example:16686/trace/{{trace_id}}"
        phoenix: "http://phoenix.example:6006/projects/{{project}}/traces/{{trace_id}}"
exporters:
  otlp:
    endpoint: "{downstream}"
    tls:
      insecure: true
extensions:
  file_storage:
    directory: "{data}"
service:
  extensions: [file_storage]
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, sampler, judge_queue]
      exporters: [otlp]
"""


def stored(path: Path) -> int:
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM evaluations").fetchone()[0])


def spans_named(capture: CaptureServer, name: str) -> list[Span]:
    return [span for raw in capture.requests for rs in ExportTraceServiceRequest.FromString(raw).resource_spans
            for ss in rs.scope_spans for span in ss.spans if span.name == name]


def resource_of(capture: CaptureServer, name: str) -> dict[str, str]:
    """The resource attributes of the first span called `name`."""
    return next({a.key: a.value.string_value for a in rs.resource.attributes}
                for raw in capture.requests for rs in ExportTraceServiceRequest.FromString(raw).resource_spans
                for ss in rs.scope_spans for span in ss.spans if span.name == name)


def attributes(span: Span) -> dict[str, object]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A user's alert webhook on loopback: its URL and the JSON documents posted to it."""
    posted: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        posted.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alerts", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/alerts", posted
    finally:
        await runner.cleanup()


async def drive(tmp_path: Path, change_at: int, webhook: str) -> tuple[CaptureServer, str]:
    """Runs the app against the pipeline until every call is judged; returns the capture and the config text."""
    env = dict(os.environ) | {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}
    code = "import sys; from tests.e2e.test_alerts import run_app; run_app(sys.argv[1], sys.argv[2], 160)"
    async with CaptureServer() as downstream, OpenAiServer(model(change_at)) as provider, \
            OpenAiServer(judge) as judge_server:
        text = config(downstream.endpoint, judge_server.base_url, tmp_path / "data", webhook)
        async with running(text) as service:
            app = await asyncio.create_subprocess_exec(sys.executable, "-c", code, provider.base_url,
                                                       grpc_target(service), cwd=REPO, env=env)
            assert await asyncio.wait_for(app.wait(), timeout=120) == 0
            await eventually(lambda: len(spans_named(downstream, "tracejudge.evaluation")) == CALLS, timeout_s=60,
                             what="every call judged")
            await eventually(lambda: stored(tmp_path / "data" / "judge_queue.stats.db") == CALLS,
                             what="every score stored")
    return downstream, text


async def test_a_silent_model_change_raises_a_model_change_alert_linking_judged_traces(tmp_path: Path) -> None:
    async with webhook_receiver() as (url, posted):
        downstream, text = await drive(tmp_path, CHANGE_AT, url)
        await eventually(lambda: len(posted) == 1, what="the alert posted to the webhook")
    alerts = spans_named(downstream, "tracejudge.alert")
    assert alerts, "no alert span reached the backend"
    first = attributes(alerts[0])
    assert first["tracejudge.alert.cause"] == "model_change"
    assert first["tracejudge.alert.series"] == "rag-app/v7/gpt-4o/relevancy"
    assert first["tracejudge.alert.baseline"] == "gpt-4o-2024-08-06|fp_a"
    assert first["tracejudge.alert.current"] == "gpt-4o-2024-08-06|fp_b"
    assert float(first["tracejudge.alert.effect"]) < -0.1  # type: ignore[arg-type]
    judged = {(s.trace_id, s.parent_span_id) for s in spans_named(downstream, "tracejudge.evaluation")}
    links = [(link.trace_id, link.span_id) for link in alerts[0].links]
    assert links and all(link in judged for link in links)
    # the linked examples are the judged spans with the lowest scores
    low = {s.parent_span_id for s in spans_named(downstream, "tracejudge.evaluation")
           if any(a.key == "gen_ai.evaluation.score.value" and a.value.double_value < 0.5
                  for e in s.events for a in e.attributes)}
    assert all(span_id in low for _, span_id in links)
    (document,) = posted
    assert document["cause"] == "model_change" and document["alert_id"] == first["tracejudge.alert.id"]
    assert [bytes.fromhex(e["span_id"]) for e in document["examples"]] == [span_id for _, span_id in links]
    # what a person can act on: the series named in the message, the traces' project, a kind that is not LLM, links
    assert alerts[0].status.message.startswith("rag-app/v7/gpt-4o/relevancy [model_change]: ")
    assert resource_of(downstream, "tracejudge.alert") == {"service.name": "tracejudge",
                                                           "openinference.project.name": "rag-project"}
    assert first["openinference.span.kind"] == "EVALUATOR" and not any(k.startswith("gen_ai.") for k in first)
    example = links[0][0].hex()
    assert f"http://jaeger.example:16686/trace/{example}" in str(first["tracejudge.alert.links"])
    assert str(first["tracejudge.alert.example_traces"]).split()[0] == example
    assert document["message"] == alerts[0].status.message
    assert document["example_links"][0]["urls"] == {
        "jaeger": f"http://jaeger.example:16686/trace/{example}",
        "phoenix": f"http://phoenix.example:6006/projects/rag-project/traces/{example}"}

    config_file = tmp_path / "config.yaml"
    config_file.write_text(text)
    listed = subprocess.run([*TRACEJUDGE, "alerts", "--config", str(config_file)], capture_output=True, text=True,
                            check=True, cwd=REPO).stdout
    assert "[model_change] rag-app/v7/gpt-4o/relevancy via cusum" in listed
    status = subprocess.run([*TRACEJUDGE, "series", "--config", str(config_file), "--json"], capture_output=True,
                            text=True, check=True, cwd=REPO).stdout
    (series,) = [json.loads(line) for line in status.splitlines()]
    assert series["n"] == CALLS and series["variant"] == "gpt-4o-2024-08-06|fp_b"
    assert series["previous_variant"] == "gpt-4o-2024-08-06|fp_a"
    replayed = subprocess.run([*TRACEJUDGE, "replay", "--config", str(config_file)], capture_output=True,
                              text=True, check=False, cwd=REPO)
    assert replayed.returncode == 0, replayed.stdout
    assert replayed.stdout.splitlines()[0] == subprocess.run(
        [*TRACEJUDGE, "alerts", "--config", str(config_file), "--json"], capture_output=True, text=True,
        check=True, cwd=REPO).stdout.splitlines()[0]


async def test_the_same_traffic_without_the_change_raises_no_alert(tmp_path: Path) -> None:
    async with webhook_receiver() as (url, posted):
        downstream, _ = await drive(tmp_path, CALLS + 1, url)
    assert spans_named(downstream, "tracejudge.alert") == [] and posted == []

