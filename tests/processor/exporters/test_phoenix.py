"""The `phoenix` exporter: evaluation results become Phoenix span annotations; other requests cost no call.

Unit tests post to a stand-in for Phoenix's annotations route; the tests marked `phoenix` run our real pipeline into
a real Phoenix, spans through `otlphttp` and annotations through `phoenix`, and read them back by REST.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from aiohttp import web
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as OTLPHttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from tests.support.metrics import metric
from tests.support.phoenix import PhoenixServer
from tests.support.pipeline import grpc_target, running
from tests.support.requests import export_request, span_ids
from tests.support.waiting import eventually
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.exporters.phoenix import PhoenixExporterConfig, span_annotations
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.evaluation_events import JudgedSpan, evaluation_request
from tracejudge.processor.service.config import parse_config
from tracejudge.processor.service.service import Service

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SENT = "tracejudge_exporter_sent_spans_total"
FAILED = "tracejudge_exporter_send_failed_spans_total"
EXPORTER_LOGGER = "tracejudge.processor.exporters.helper.queued"
PHOENIX_LOGGER = "tracejudge.processor.exporters.phoenix"
# export_request's LLM span answers "Paris." and stops of its own accord: every check passes.
CHECKS = {
    "tracejudge.check.truncated",
    "tracejudge.check.answer_length",
    "tracejudge.check.refusal",
    "tracejudge.check.pii",
}
JUDGE_VERSION = "judge-v1"
RESPONSE_ID = "chatcmpl-123"


def pipeline_yaml(phoenix_url: str, phoenix_settings: str = "", spans_too: bool = False) -> str:
    """llm_extract and llm_checks, then a `phoenix` exporter (one consumer: delivery in order) and, with
    `spans_too`, an `otlphttp` exporter carrying the spans to the same Phoenix."""
    otlphttp = (
        f"""
  otlphttp/phoenix:
    endpoint: {phoenix_url}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms}}"""
        if spans_too
        else ""
    )
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  llm_extract:
  llm_checks:
exporters:{otlphttp}
  phoenix:
    endpoint: {phoenix_url}
    sending_queue: {{num_consumers: 1}}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 20s}}
{phoenix_settings}
service:
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, llm_checks]
      exporters: [{"otlphttp/phoenix, " if spans_too else ""}phoenix]
"""


async def send(service: Service, payload: bytes) -> None:
    """A raw OTLP/gRPC export to our receiver; returns once the request is in the exporters' queues."""
    async with grpc.aio.insecure_channel(grpc_target(service)) as channel:
        await channel.unary_unary(EXPORT)(payload, timeout=10)


def judged_span(trace_id: str, span_id: str) -> JudgedSpan:
    """A judge's results for one LLM span: one metric scored, one the judge could not score."""
    return JudgedSpan(
        trace_id,
        span_id,
        (
            EvaluationResult("relevance", 0.75, "relevant", "The answer names the capital."),
            EvaluationResult("faithfulness", None, explanation="no answer within 30s", error_type="timeout"),
        ),
        start_unix_nano=1_700_000_001_000_000_000,
        end_unix_nano=1_700_000_002_000_000_000,
        response_id=RESPONSE_ID,
        attributes={
            "tracejudge.judge.version": JUDGE_VERSION,
            "tracejudge.sample.probability": 0.25,
            "tracejudge.sample.stratum": "gpt-4o-mini",
            "tracejudge.cost_usd": 0.0012,
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        },
        result_attributes={
            "relevance": {
                "tracejudge.tier": "heavy",
                "tracejudge.judge.model": "gpt-4o",
                "tracejudge.judge.prompt_version": "relevance-v2",
                "tracejudge.confidence": 0.9,
                "tracejudge.cost_usd": 0.0012,
            },
            "faithfulness": {
                "tracejudge.tier": "heavy",
                "tracejudge.judge.model": "gpt-4o",
                "tracejudge.judge.prompt_version": "faithfulness-v1",
                "tracejudge.cost_usd": 0.0,
            },
        },
        version=JUDGE_VERSION,
    )


SPAN_METADATA = {
    "tracejudge.judge.version": JUDGE_VERSION,
    "tracejudge.sample.probability": 0.25,
    "tracejudge.sample.stratum": "gpt-4o-mini",
    "gen_ai.response.id": RESPONSE_ID,
}
EXPECTED_JUDGE_ANNOTATIONS = {
    "relevance": {
        "annotator_kind": "LLM",
        "identifier": JUDGE_VERSION,
        "result": {"score": 0.75, "label": "relevant", "explanation": "The answer names the capital."},
        "metadata": SPAN_METADATA
        | {
            "tracejudge.tier": "heavy",
            "tracejudge.judge.model": "gpt-4o",
            "tracejudge.judge.prompt_version": "relevance-v2",
            "tracejudge.confidence": 0.9,
            "tracejudge.cost_usd": 0.0012,
        },
    },
    "faithfulness": {
        "annotator_kind": "LLM",
        "identifier": JUDGE_VERSION,
        "result": {"label": "unjudged", "explanation": "unjudged (timeout): no answer within 30s"},
        "metadata": SPAN_METADATA
        | {
            "tracejudge.tier": "heavy",
            "tracejudge.judge.model": "gpt-4o",
            "tracejudge.judge.prompt_version": "faithfulness-v1",
            "tracejudge.cost_usd": 0.0,
            "error.type": "timeout",
        },
    },
}


def essentials(annotation: dict[str, Any]) -> dict[str, Any]:
    """What we sent of an annotation, as Phoenix returns it (unset result fields come back as null)."""
    result = {key: value for key, value in annotation["result"].items() if value is not None}
    return {
        "annotator_kind": annotation["annotator_kind"],
        "identifier": annotation["identifier"],
        "result": result,
        "metadata": annotation["metadata"],
    }


# --- unit: a stand-in for Phoenix ---------------------------------------------------------------------------


@dataclass
class Post:
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: Any


@dataclass
class PhoenixStandIn:
    """POST /v1/span_annotations answering the scripted (status, detail) replies first, then 200."""

    replies: list[tuple[int, str]] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    url: str = ""
    missing: set[str] = field(default_factory=set)  # span ids never ingested: a 404 naming them, as Phoenix does

    async def annotate(self, request: web.Request) -> web.Response:
        headers = {key.lower(): value for key, value in request.headers.items()}
        self.posts.append(Post(dict(request.query), headers, await request.json()))
        lacking = sorted({a["span_id"] for a in self.posts[-1].body["data"]} & self.missing)
        if lacking:
            return web.Response(text=f"Spans with IDs {', '.join(lacking)} do not exist.", status=404)
        if self.replies:
            status, detail = self.replies.pop(0)
            return web.Response(text=detail, status=status, headers={"Retry-After": "0"})  # as Phoenix: plain text
        return web.json_response({"data": [{"id": f"SpanAnnotation:{len(self.posts)}"}]})


@asynccontextmanager
async def phoenix_stand_in(replies: Sequence[tuple[int, str]] = ()) -> AsyncIterator[PhoenixStandIn]:
    stand_in = PhoenixStandIn(list(replies))
    app = web.Application()
    app.router.add_post("/v1/span_annotations", stand_in.annotate)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        stand_in.url = f"http://{host}:{port}"
        yield stand_in
    finally:
        await runner.cleanup()


async def test_only_requests_holding_results_are_posted_and_checks_annotate_their_llm_span() -> None:
    async with phoenix_stand_in() as phoenix:
        settings = "    headers: {authorization: Bearer phx-key}"
        async with running(pipeline_yaml(phoenix.url, settings)) as service:
            await send(service, export_request(spans=3).SerializeToString())  # no LLM span: no results
            llm_request = export_request(spans=2, llm_every=2)
            await send(service, llm_request.SerializeToString())
            await eventually(lambda: metric(service, SENT, exporter="phoenix") == 2, what="the checked request sent")
            # Delivery is in order (one consumer), so the first request was never queued: it counts nowhere.
            assert metric(service, FAILED, exporter="phoenix") == 0
        assert metric(service, SENT, exporter="phoenix") == 2

    [post] = phoenix.posts
    assert post.query == {"sync": "true"}
    assert post.headers["authorization"] == "Bearer phx-key"
    assert post.headers["content-type"] == "application/json"
    llm_span_id = span_ids(llm_request)[0].hex()
    annotations = {a["name"]: a for a in post.body["data"]}
    assert set(annotations) == CHECKS and len(post.body["data"]) == len(CHECKS)
    for annotation in annotations.values():
        assert annotation == {
            "name": annotation["name"],
            "span_id": llm_span_id,
            "annotator_kind": "CODE",
            "identifier": "checks",
            "result": {"score": 1.0, "label": "pass"},
            "metadata": {},
        }


def test_an_evaluation_span_annotates_the_judged_span_and_an_unjudged_metric_has_no_score() -> None:
    trace_id, llm_span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    annotations = span_annotations(evaluation_request([judged_span(trace_id, llm_span_id)]))
    assert {a["name"]: essentials(a) for a in annotations} == EXPECTED_JUDGE_ANNOTATIONS
    assert [a["span_id"] for a in annotations] == [llm_span_id, llm_span_id]


@pytest.mark.parametrize("replies", [[(503, "busy"), (404, "Spans with IDs b7ad do not exist.")], [(429, "slow down")]])
async def test_unavailable_and_unknown_spans_are_retried_until_phoenix_takes_the_annotations(
    replies: list[tuple[int, str]],
) -> None:
    async with phoenix_stand_in(replies) as phoenix, running(pipeline_yaml(phoenix.url)) as service:
        await send(service, export_request(spans=2, llm_every=2).SerializeToString())
        await eventually(lambda: metric(service, SENT, exporter="phoenix") == 2, what="annotations delivered")
    assert len(phoenix.posts) == len(replies) + 1
    assert all(post.body == phoenix.posts[0].body for post in phoenix.posts)


async def test_a_span_phoenix_never_gets_is_given_up_after_missing_span_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    detail = "Spans with IDs 0000000000000009 do not exist."
    settings = "    missing_span_timeout: 300ms"
    async with (
        phoenix_stand_in([(404, detail)] * 1000) as phoenix,
        running(pipeline_yaml(phoenix.url, settings)) as service,
    ):
        await send(service, export_request(spans=2, llm_every=2).SerializeToString())
        await eventually(lambda: metric(service, FAILED, exporter="phoenix") == 2, what="the request given up")
    assert 2 <= len(phoenix.posts) < 1000
    [dropped] = [r.getMessage() for r in caplog.records if r.name == EXPORTER_LOGGER]
    assert detail in dropped and "missing_span_timeout" in dropped and "otlphttp exporter" in dropped


async def test_annotations_wait_for_a_lagging_phoenix_longer_than_other_failures_are_retried() -> None:
    request = export_request(spans=2, llm_every=2)
    lagging = [(404, f"Spans with IDs {span_ids(request)[0].hex()} do not exist.")] * 10  # ~1 s of backoff
    yaml = pipeline_yaml("{url}").replace("max_elapsed_time: 20s", "max_elapsed_time: 300ms")
    async with phoenix_stand_in(lagging) as phoenix, running(yaml.replace("{url}", phoenix.url)) as service:
        await send(service, request.SerializeToString())
        await eventually(lambda: metric(service, SENT, exporter="phoenix") == 2, timeout_s=20, what="delivered")
        assert metric(service, FAILED, exporter="phoenix") == 0
    assert len(phoenix.posts) == 11


async def test_a_span_phoenix_lacks_does_not_hold_back_the_annotations_of_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = export_request(spans=2, llm_every=1)  # two checked LLM spans in one request
    present, absent = (span.hex() for span in span_ids(request))
    async with phoenix_stand_in() as phoenix, \
            running(pipeline_yaml(phoenix.url, "    missing_span_timeout: 1s")) as service:
        phoenix.missing = {absent}
        await send(service, request.SerializeToString())
        await eventually(lambda: any({a["span_id"] for a in p.body["data"]} == {present} for p in phoenix.posts),
                         what="the present span's annotations posted on their own")
        await eventually(lambda: metric(service, FAILED, exporter="phoenix") == 2, what="the absent span given up")
    [dropped] = [r.getMessage() for r in caplog.records if r.name == EXPORTER_LOGGER]
    assert f"Spans with IDs {absent} do not exist" in dropped and "not a Phoenix that lags" in dropped
    assert all({a["span_id"] for a in p.body["data"]} == {absent} for p in phoenix.posts[2:])


async def test_other_client_errors_are_permanent_and_logged_with_phoenixs_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    detail = "Field required: data.0.annotator_kind"
    async with phoenix_stand_in([(422, detail)]) as phoenix, running(pipeline_yaml(phoenix.url)) as service:
        await send(service, export_request(spans=2, llm_every=2).SerializeToString())
        await eventually(lambda: metric(service, FAILED, exporter="phoenix") == 2, what="the request given up")
    assert len(phoenix.posts) == 1
    [dropped] = [r.getMessage() for r in caplog.records if r.name == EXPORTER_LOGGER]
    assert "HTTP 422" in dropped and detail in dropped


def test_config_defaults_and_errors_name_the_yaml_key() -> None:
    defaults = PhoenixExporterConfig(endpoint="http://127.0.0.1:6006")
    assert (defaults.compression, defaults.timeout, defaults.missing_span_timeout) == ("none", 5.0, 6 * 3600.0)
    assert defaults.url == "http://127.0.0.1:6006/v1/span_annotations"
    for settings, problem in [
        ("{compression: gzip}", "exporters.phoenix.compression: must be one of none, got 'gzip'"),
        ("{}", "exporters.phoenix.endpoint: required"),
        ("{endpoint: phoenix:6006}", "exporters.phoenix.endpoint: must start with http:// or https://"),
        ("{endpoint: 'http://x', missing_span_timeout: -1s}", "exporters.phoenix.missing_span_timeout"),
    ]:
        text = f"""
receivers: {{otlp: {{protocols: {{grpc: }}}}}}
exporters: {{phoenix: {settings}}}
service: {{pipelines: {{traces: {{receivers: [otlp], exporters: [phoenix]}}}}}}
"""
        with pytest.raises(ConfigError) as raised:
            parse_config(text, {})
        assert any(line.startswith(problem) for line in raised.value.problems), raised.value.problems


# --- end to end: a real Phoenix -----------------------------------------------------------------------------

LLM_ATTRIBUTES: dict[str, AttributeValue] = {
    "openinference.span.kind": "LLM",
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": RESPONSE_ID,
    "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}]
    ),
    "gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}], "finish_reason": "stop"}]
    ),
}


def record_llm_span(project: str) -> ReadableSpan:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "openinference.project.name": project})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("tests.phoenix_annotations").start_as_current_span(
        "chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=LLM_ATTRIBUTES
    ):
        pass
    provider.shutdown()
    [span] = memory.get_finished_spans()
    return span


def export_over_grpc(target: str, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    """The SDK's own OTLP/gRPC exporter; blocking, so tests run it off the event loop tracejudge serves on."""
    exporter = OTLPSpanExporter(endpoint=f"http://{target}", insecure=True, timeout=10)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def export_to_phoenix(phoenix: PhoenixServer, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    """Straight into Phoenix with the SDK's OTLP/HTTP exporter, as another collector would: not through us."""
    exporter = OTLPHttpSpanExporter(endpoint=f"{phoenix.base_url}/v1/traces", timeout=10)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def ids(span: ReadableSpan) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


@pytest.mark.phoenix
async def test_judge_and_check_results_become_annotations_on_the_llm_span_in_phoenix(phoenix: PhoenixServer) -> None:
    project = f"tracejudge-annotations-{uuid.uuid4().hex[:12]}"
    llm = record_llm_span(project)
    trace_id, llm_span_id = ids(llm)
    async with running(pipeline_yaml(phoenix.base_url, spans_too=True)) as service:
        assert await asyncio.to_thread(export_over_grpc, grpc_target(service), [llm]) is SpanExportResult.SUCCESS
        await phoenix.wait_for_spans(project, count=1)
        await send(service, evaluation_request([judged_span(trace_id, llm_span_id)]).SerializeToString())
        annotations = await phoenix.wait_for_annotations(project, [llm_span_id], count=2 + len(CHECKS))

    assert {a["span_id"] for a in annotations} == {llm_span_id}
    judge = {a["name"]: essentials(a) for a in annotations if a["annotator_kind"] == "LLM"}
    assert judge == EXPECTED_JUDGE_ANNOTATIONS
    assert judge["faithfulness"]["result"].get("score") is None  # unjudged: no score, not a made-up one
    checks = {a["name"]: essentials(a) for a in annotations if a["annotator_kind"] == "CODE"}
    assert set(checks) == CHECKS
    for check in checks.values():
        assert check == {
            "annotator_kind": "CODE",
            "identifier": "checks",
            "result": {"score": 1.0, "label": "pass"},
            "metadata": {"gen_ai.response.id": RESPONSE_ID},
        }
    assert metric(service, FAILED, exporter="phoenix") == 0


@pytest.mark.phoenix
async def test_annotations_for_a_span_phoenix_has_not_ingested_yet_land_once_it_has(
    phoenix: PhoenixServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=PHOENIX_LOGGER)
    project = f"tracejudge-late-span-{uuid.uuid4().hex[:12]}"
    llm = record_llm_span(project)
    trace_id, llm_span_id = ids(llm)
    async with running(pipeline_yaml(phoenix.base_url)) as service:  # annotations only: the span comes another way
        await send(service, evaluation_request([judged_span(trace_id, llm_span_id)]).SerializeToString())
        await eventually(
            lambda: any("HTTP 404" in r.getMessage() for r in caplog.records if r.name == PHOENIX_LOGGER),
            timeout_s=20,
            what="Phoenix answering 404 for the judged span it has not ingested",
        )
        assert await asyncio.to_thread(export_to_phoenix, phoenix, [llm]) is SpanExportResult.SUCCESS
        annotations = await phoenix.wait_for_annotations(project, [llm_span_id], count=2)

    assert {a["name"]: essentials(a) for a in annotations} == EXPECTED_JUDGE_ANNOTATIONS
    assert metric(service, FAILED, exporter="phoenix") == 0


@pytest.mark.phoenix
async def test_posting_the_same_evaluation_again_updates_instead_of_duplicating(phoenix: PhoenixServer) -> None:
    project = f"tracejudge-idempotent-{uuid.uuid4().hex[:12]}"
    llm = record_llm_span(project)
    trace_id, llm_span_id = ids(llm)
    payload = evaluation_request([judged_span(trace_id, llm_span_id)]).SerializeToString()
    async with running(pipeline_yaml(phoenix.base_url, spans_too=True)) as service:
        assert await asyncio.to_thread(export_over_grpc, grpc_target(service), [llm]) is SpanExportResult.SUCCESS
        await phoenix.wait_for_spans(project, count=1)
        await send(service, payload)
        first = await phoenix.wait_for_annotations(project, [llm_span_id], count=2 + len(CHECKS))
        sent = metric(service, SENT, exporter="phoenix")  # every annotation is in: nothing is in flight
        await send(service, payload)  # as an at-least-once retry would
        await eventually(lambda: metric(service, SENT, exporter="phoenix") == sent + 1, what="the re-post sent")
        again = await phoenix.span_annotations(project, [llm_span_id])

    assert sorted(a["id"] for a in again) == sorted(a["id"] for a in first)
    assert sorted(a["name"] for a in again if a["annotator_kind"] == "LLM") == sorted(EXPECTED_JUDGE_ANNOTATIONS)
    assert metric(service, FAILED, exporter="phoenix") == 0


@pytest.mark.phoenix
async def test_a_burst_that_makes_phoenix_lag_loses_no_annotation(phoenix: PhoenixServer,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """600 checked LLM spans at once: Phoenix ingests some 100-150 spans a second, so it answers 404 for most
    annotations at first; they wait for their spans (missing_span_timeout) and all land."""
    caplog.set_level(logging.DEBUG, logger=PHOENIX_LOGGER)
    project = f"tracejudge-burst-{uuid.uuid4().hex[:12]}"
    requests = [export_request(spans=50, llm_every=1) for _ in range(12)]
    for request in requests:
        request.resource_spans[0].resource.attributes.add(key="openinference.project.name").value.string_value = (
            project)
    async with running(pipeline_yaml(phoenix.base_url, spans_too=True)) as service:
        for request in requests:
            await send(service, request.SerializeToString())
        await eventually(lambda: metric(service, SENT, exporter="phoenix") == 600, timeout_s=240,
                         what="every annotation posted")
        assert metric(service, FAILED, exporter="phoenix") == 0
    assert any("waiting until Phoenix has ingested" in r.getMessage() for r in caplog.records)  # it did lag
    last = [span.hex() for span in span_ids(requests[-1])]
    annotations = await phoenix.span_annotations(project, last)
    assert {a["span_id"] for a in annotations} == set(last) and len(annotations) == len(last) * len(CHECKS)
