"""Scores where users look, in a real Jaeger (build/jaeger, v1.75.0, in-memory storage): an app instrumented with
the official OpenAI instrumentation sends its spans to tracejudge, which forwards them to Jaeger. Read back through
Jaeger's query API: the LLM span carries the check results as span logs, its `tracejudge.evaluation` child span the
judge's `gen_ai.evaluation.result` events, and an alert span refers to the judged example traces.

The Jaeger built from the Go module has no UI assets (the UI is a separate front-end build): its web page is a
placeholder, so these checks go through the query API that page would use."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tests.e2e.test_alerts import CALLS, CHANGE_AT, config, judge, model, stored
from tests.support.jaeger import JaegerServer
from tests.support.openai_server import Completion, OpenAiServer
from tests.support.pipeline import grpc_target, running
from tests.support.shipped import environment, with_exporter
from tests.support.waiting import eventually
from tracejudge.judge.embedded_model import model_version

REPO = Path(__file__).resolve().parents[2]
APP_ENV = dict(os.environ) | {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}


def shipped_config_to(jaeger: JaegerServer) -> tuple[str, dict[str, str]]:
    """otel-config.yaml as shipped, with an `otlp/jaeger` exporter added to its pipeline, and its environment."""
    text = with_exporter("otlp/jaeger", f"    endpoint: {jaeger.otlp_endpoint}\n    tls:\n      insecure: true\n")
    return text, environment() | {"TRACEJUDGE_SAMPLE_RATE": "1",
                                  "TRACEJUDGE_MEMORY_LIMIT_MIB": "65536"}  # the limit is for a process of its own


def tags(holder: dict[str, Any]) -> dict[str, Any]:
    """A Jaeger span's tags, or a log's fields, as a dict."""
    return {tag["key"]: tag["value"] for tag in holder.get("tags", holder.get("fields", []))}


def evaluation_logs(span: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The span's `gen_ai.evaluation.result` logs, by evaluation name."""
    found = {}
    for entry in span["logs"]:
        fields = tags(entry)
        if fields.get("event") == "gen_ai.evaluation.result":
            found[str(fields["gen_ai.evaluation.name"])] = fields
    return found


async def run_app(base_url: str, endpoint: str, calls: int) -> None:
    code = "import sys; from tests.e2e.test_alerts import run_app; run_app(sys.argv[1], sys.argv[2], int(sys.argv[3]))"
    app = await asyncio.create_subprocess_exec(sys.executable, "-c", code, base_url, endpoint, str(calls), cwd=REPO,
                                               env=APP_ENV)
    assert await asyncio.wait_for(app.wait(), timeout=120) == 0


async def test_jaeger_shows_the_checks_and_the_evaluation_of_an_llm_span(tmp_path: Path, jaeger: JaegerServer) -> None:
    text, environ = shipped_config_to(jaeger)
    environ["TRACEJUDGE_DATA_DIR"] = str(tmp_path / "data")
    answer = Completion(content="Paris is the capital of France.", model="gpt-4o-2024-08-06")
    async with OpenAiServer(answer) as provider, running(text, environ) as service:
        await run_app(provider.base_url, grpc_target(service), 1)
        await eventually(lambda: jaeger.find_traces("tracejudge", "tracejudge.evaluation"), timeout_s=30,
                         what="the evaluation span in Jaeger")
        (evaluated,) = await jaeger.find_traces("tracejudge", "tracejudge.evaluation")
        trace = await jaeger.wait_for_trace(evaluated["traceID"], 3)  # the app's root, the LLM span, the evaluation
    spans = {span["spanID"]: span for span in trace["spans"]}
    (llm,) = [s for s in spans.values() if tags(s).get("gen_ai.operation.name") == "chat"]
    (evaluation,) = [s for s in spans.values() if s["operationName"] == "tracejudge.evaluation"]
    # the checks travel inside the forwarded LLM span: span logs in Jaeger
    checks = evaluation_logs(llm)
    assert {"tracejudge.check.answer_length", "tracejudge.check.refusal", "tracejudge.check.pii"} <= set(checks)
    assert all(fields["gen_ai.evaluation.score.label"] == "pass" for fields in checks.values())
    # the judge's evaluation is a child of the LLM span, in its trace, from service tracejudge
    assert {"refType": "CHILD_OF", "traceID": trace["traceID"], "spanID": llm["spanID"]} in evaluation["references"]
    assert trace["processes"][evaluation["processID"]]["serviceName"] == "tracejudge"
    relevancy = evaluation_logs(evaluation)["relevancy"]
    assert 0 <= float(relevancy["gen_ai.evaluation.score.value"]) <= 1
    assert relevancy["gen_ai.evaluation.score.label"] in ("pass", "fail")
    # the configured judge_version, then the shipped embedded model's own version
    assert tags(evaluation)["tracejudge.judge.version"] == f"1+m-{model_version().rsplit('@', 1)[1][:8]}"
    # judging does not stretch the trace: the evaluation span lies inside the LLM span, the trace ends with its root
    assert llm["startTime"] <= evaluation["startTime"]
    assert evaluation["startTime"] + evaluation["duration"] <= llm["startTime"] + llm["duration"]
    (root,) = [s for s in spans.values() if not s["references"]]
    assert max(s["startTime"] + s["duration"] for s in spans.values()) == root["startTime"] + root["duration"]


async def test_an_alert_span_in_jaeger_refers_to_judged_example_traces(tmp_path: Path, jaeger: JaegerServer) -> None:
    async with OpenAiServer(model(CHANGE_AT)) as provider, OpenAiServer(judge) as judge_server:
        text = config(jaeger.otlp_endpoint, judge_server.base_url, tmp_path / "data", "")
        async with running(text) as service:
            await run_app(provider.base_url, grpc_target(service), CALLS)
            await eventually(lambda: stored(tmp_path / "data" / "judge_queue.stats.db") == CALLS, timeout_s=60,
                             what="every score stored")
            await eventually(lambda: jaeger.find_traces("tracejudge", "tracejudge.alert"), timeout_s=30,
                             what="the alert span in Jaeger")
    (alert_trace,) = await jaeger.find_traces("tracejudge", "tracejudge.alert")
    (alert,) = [s for s in alert_trace["spans"] if s["operationName"] == "tracejudge.alert"]
    assert tags(alert)["tracejudge.alert.cause"] == "model_change"
    examples = [ref for ref in alert["references"] if ref["traceID"] != alert_trace["traceID"]]
    assert examples, alert["references"]
    for ref in examples:  # each points at a judged LLM span of another trace, which Jaeger has
        example = await jaeger.wait_for_trace(ref["traceID"], 3)
        evaluations = [s for s in example["spans"] if s["operationName"] == "tracejudge.evaluation"]
        assert any(r["spanID"] == ref["spanID"] for s in evaluations for r in s["references"]), ref
