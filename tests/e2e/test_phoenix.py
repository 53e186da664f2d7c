"""End to end into a real Arize Phoenix: OTel SDK → tracejudge (OTLP/gRPC) → `otlphttp` → Phoenix, read back by REST.

Phoenix files each span under the project named by its `openinference.project.name` resource attribute, so every
test sends to a project of its own and one Phoenix serves the whole session.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tests.support.phoenix import PhoenixServer
from tests.support.pipeline import grpc_target, running
from tests.support.shipped import environment, with_exporter
from tracejudge.processor.processors.judge_queue.alert_spans import alert_request
from tracejudge.stats.records import Alert, SeriesKey

pytestmark = pytest.mark.phoenix

LLM_ATTRIBUTES: dict[str, AttributeValue] = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o-mini-2024-07-18",
    "input.value": "What is the capital of France?",
    "output.value": "Paris.",
    "llm.token_count.prompt": 12,
}
ASSORTED_ATTRIBUTES: dict[str, AttributeValue] = {
    "http.route": "/chat",
    "app.retries": 3,
    "app.big_count": 2**53 + 1,  # beyond a float64's exact integers: only a true int64 path keeps it
    "app.temperature": 0.25,
    "app.cached": True,
    "app.tags": ("fast", "cheap"),
    "app.sizes": (1, 2, 3),
    "app.weights": (0.5, 1.5),
    "app.flags": (True, False),
}


def pipeline_yaml(phoenix_url: str, compression: str) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  llm_extract:
exporters:
  otlphttp/phoenix:
    endpoint: {phoenix_url}
    compression: {compression}
    timeout: 5s
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 20s}}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract]
      exporters: [otlphttp/phoenix]
"""


def record_spans(project: str) -> list[ReadableSpan]:
    """A request span with assorted attribute types and, inside it, an OpenInference LLM span."""
    memory = InMemorySpanExporter()
    resource = Resource.create({"service.name": "checkout", "openinference.project.name": project})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.phoenix")
    with (tracer.start_as_current_span("handle request", attributes=ASSORTED_ATTRIBUTES),
          tracer.start_as_current_span("ChatCompletion", attributes=LLM_ATTRIBUTES) as llm):
        llm.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def export_over_grpc(target: str, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    """The SDK's own OTLP/gRPC exporter; blocking, so tests run it off the event loop tracejudge serves on."""
    exporter = OTLPSpanExporter(endpoint=f"http://{target}", insecure=True, timeout=10)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def typed(value: Any) -> Any:
    """A value with its type spelled out, so True ≠ 1 and 3 ≠ 3.0; tuples and JSON arrays compare alike."""
    if isinstance(value, list | tuple):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def attributes_seen(stored: Mapping[str, Any], sent: Mapping[str, AttributeValue]) -> dict[str, Any]:
    return {key: typed(stored.get(key)) for key in sent}


@pytest.mark.parametrize("compression", ["gzip", "none"])
async def test_spans_reach_phoenix_with_ids_parents_and_attributes_intact(phoenix: PhoenixServer,
                                                                          compression: str) -> None:
    project = f"tracejudge-{compression}-{uuid.uuid4().hex[:12]}"
    root, llm = sorted(record_spans(project), key=lambda span: span.parent is not None)
    async with running(pipeline_yaml(phoenix.base_url, compression)) as service:
        result = await asyncio.to_thread(export_over_grpc, grpc_target(service), [llm, root])
        assert result is SpanExportResult.SUCCESS
        stored = {span["context"]["span_id"]: span for span in await phoenix.wait_for_spans(project, count=2)}

    trace_id = f"{root.context.trace_id:032x}"
    root_id, llm_id = f"{root.context.span_id:016x}", f"{llm.context.span_id:016x}"
    assert set(stored) == {root_id, llm_id}
    assert {stored[root_id]["context"]["trace_id"], stored[llm_id]["context"]["trace_id"]} == {trace_id}
    assert (stored[root_id]["name"], stored[root_id]["parent_id"]) == ("handle request", None)
    assert (stored[llm_id]["name"], stored[llm_id]["parent_id"]) == ("ChatCompletion", root_id)
    assert stored[llm_id]["status_code"] == "OK"

    # Phoenix lifts openinference.span.kind out of the attributes into span_kind.
    assert (stored[llm_id]["span_kind"], stored[root_id]["span_kind"]) == ("LLM", "UNKNOWN")
    llm_sent = {k: v for k, v in LLM_ATTRIBUTES.items() if k != "openinference.span.kind"}
    assert attributes_seen(stored[llm_id]["attributes"], llm_sent) == attributes_seen(llm_sent, llm_sent)
    assert attributes_seen(stored[root_id]["attributes"], ASSORTED_ATTRIBUTES) == attributes_seen(
        ASSORTED_ATTRIBUTES, ASSORTED_ATTRIBUTES)


def _unix_s(timestamp: str) -> float:
    return datetime.datetime.fromisoformat(timestamp).timestamp()


async def test_judging_leaves_the_traces_duration_in_phoenix_unchanged(phoenix: PhoenixServer,
                                                                      tmp_path: Path) -> None:
    """The evaluation span is the LLM span's child, inside its interval: Phoenix's trace extent stays the app's."""
    project = f"timing-{uuid.uuid4().hex[:12]}"
    root, llm = sorted(record_spans(project), key=lambda span: span.parent is not None)
    text = with_exporter("otlphttp/phoenix", f"    endpoint: {phoenix.base_url}\n")
    environ = environment() | {"TRACEJUDGE_SAMPLE_RATE": "1", "TRACEJUDGE_DATA_DIR": str(tmp_path / "data"),
                               "TRACEJUDGE_MEMORY_LIMIT_MIB": "65536"}  # the limit is for a process of its own
    async with running(text, environ) as service:
        result = await asyncio.to_thread(export_over_grpc, grpc_target(service), [llm, root])
        assert result is SpanExportResult.SUCCESS
        stored = await phoenix.wait_for_spans(project, count=3, timeout_s=60)  # root, LLM span, evaluation
    by_name = {span["name"]: span for span in stored}
    evaluation, llm_stored = by_name["tracejudge.evaluation"], by_name["ChatCompletion"]
    assert evaluation["parent_id"] == llm_stored["context"]["span_id"]
    assert _unix_s(llm_stored["start_time"]) <= _unix_s(evaluation["start_time"])
    assert _unix_s(evaluation["end_time"]) <= _unix_s(llm_stored["end_time"])
    starts = [_unix_s(span["start_time"]) for span in stored]
    ends = [_unix_s(span["end_time"]) for span in stored]
    root_stored = by_name["handle request"]
    assert (min(starts), max(ends)) == (_unix_s(root_stored["start_time"]), _unix_s(root_stored["end_time"]))
    # when judging really happened, and how long it took, is on the span
    assert evaluation["attributes"]["tracejudge.judge.duration_s"] >= 0
    assert _unix_s(evaluation["attributes"]["tracejudge.judge.started_at"]) >= _unix_s(root_stored["end_time"])


async def test_an_alert_lands_in_the_project_of_its_traces_as_an_evaluator_span(phoenix: PhoenixServer) -> None:
    project = f"alerts-{uuid.uuid4().hex[:12]}"
    root, llm = sorted(record_spans(project), key=lambda span: span.parent is not None)
    example = (f"{llm.context.trace_id:032x}", f"{llm.context.span_id:016x}")
    alert = Alert("alert-1", time.time_ns(), SeriesKey("checkout", "v2", "gpt-4o-mini", "faithfulness"),
                  "prompt_change", "welch", "mean score 0.82 -> 0.55", "v1", "v2", examples=(example,))
    request = alert_request([alert], {"jaeger": "http://jaeger:16686/trace/{trace_id}"}, {"checkout": project})
    async with running(pipeline_yaml(phoenix.base_url, "gzip")) as service:
        assert await asyncio.to_thread(export_over_grpc, grpc_target(service), [llm, root]) is SpanExportResult.SUCCESS
        async with grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
                request.SerializeToString(), timeout=10)
        stored = await phoenix.wait_for_spans(project, count=3)
    (found,) = [span for span in stored if span["name"] == "tracejudge.alert"]
    assert found["span_kind"] == "EVALUATOR"  # not LLM: it does not count among the project's LLM calls
    assert found["status_message"] == "checkout/v2/gpt-4o-mini/faithfulness [prompt_change]: mean score 0.82 -> 0.55"
    assert found["attributes"]["tracejudge.alert.example_traces"] == example[0]
    assert found["attributes"]["tracejudge.alert.links"] == f"http://jaeger:16686/trace/{example[0]}"
