"""Feedback end to end: the pipeline from YAML with the `eval_service` extension on loopback (real gRPC server, real
HTTP server), an app exporting with the real OTel SDK, and a scripted loopback judge. Nothing is sampled (rate 0):
whatever gets judged was judged because of feedback, which may arrive before or after its trace, by gRPC, HTTP or
span attributes."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.support.openai_server import Completion, OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.waiting import eventually
from tracejudge.processor.extensions.eval_service import EvalService
from tracejudge.processor.service.service import Service
from tracejudge.v1 import eval_service_pb2 as pb
from tracejudge.v1 import eval_service_pb2_grpc as pb_grpc

CONTEXT = "The Eiffel Tower is 330 metres tall and stands in Paris."


def judge(request: dict[str, Any]) -> Completion:
    response = json.loads(request["messages"][-1]["content"])["response"]
    good = "330" in response
    return Completion(content=json.dumps({"score": 0.9 if good else 0.2, "label": "pass" if good else "fail",
                                          "explanation": "scripted"}), system_fingerprint=None)


def config(downstream: str, judge_url: str, data: Path) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  llm_extract:
  sampler:
    rate: 0.0
  judge_queue:
    storage: file_storage
    metrics: [faithfulness]
    decision_wait: 0s
    max_decision_wait: 0s
    workers: {{count: 1, poll_interval: 20ms}}
    judges:
      local:
        judge: openai
        server: {{base_url: "{judge_url}", model: judge-model, max_retries: 0}}
exporters:
  otlp:
    endpoint: "{downstream}"
    tls: {{insecure: true}}
extensions:
  file_storage: {{directory: "{data}"}}
  eval_service:
    grpc: {{endpoint: 127.0.0.1:0}}
    http: {{endpoint: 127.0.0.1:0}}
service:
  extensions: [file_storage, eval_service]
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, sampler, judge_queue]
      exporters: [otlp]
"""


class App:
    """An app answering questions, exporting each span at once with the SDK's OTLP/gRPC exporter."""

    def __init__(self, endpoint: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "qa-app"}))
        self.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{endpoint}",
                                                                              insecure=True)))
        self.tracer = self.provider.get_tracer("qa-app")

    def answer(self, answer: str, trace_id: str = "") -> tuple[str, str]:
        """One trace with an LLM span (in trace `trace_id` if given); returns its (trace id, LLM span id) in hex."""
        parent = None
        if trace_id:
            remote = otel_trace.SpanContext(int(trace_id, 16), 0x00F067AA0BA902B7, is_remote=True,
                                            trace_flags=otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED))
            parent = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(remote))
        with self.tracer.start_as_current_span("ask", context=parent), self.tracer.start_as_current_span(
                "llm", attributes={"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                                   "input.value": "How tall is it?", "output.value": answer,
                                   "retrieval.documents.0.document.content": CONTEXT}) as span:
            context = span.get_span_context()
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"

    def regenerate(self, trace_id: str, span_id: str) -> None:
        """Later, in a trace of its own: the user asked for another answer (a span linking to the answer)."""
        link = otel_trace.Link(otel_trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True))
        with self.tracer.start_as_current_span("feedback", links=[link],
                                               attributes={"tracejudge.feedback.regenerated": True}):
            pass


@asynccontextmanager
async def pipeline(tmp_path: Path) -> AsyncIterator[tuple[Service, EvalService, App]]:
    async with CaptureServer() as downstream, OpenAiServer(judge) as judge_server, \
            running(config(downstream.endpoint, judge_server.base_url, tmp_path / "data")) as service:
        app = App(grpc_target(service))
        try:
            yield service, service.extensions["eval_service"], app
        finally:
            app.provider.shutdown()


def feedback(trace_id: str, **fields: Any) -> Any:
    return pb.SubmitFeedbackRequest(feedback=[pb.Feedback(trace_id=trace_id, source="test", **fields)])


async def test_feedback_before_and_after_the_trace_gets_it_judged_by_grpc_http_and_span(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as (service, eval_service, app), \
            grpc.aio.insecure_channel(f"127.0.0.1:{eval_service.grpc_port}") as channel, \
            aiohttp.ClientSession(f"http://127.0.0.1:{eval_service.http_port}") as http:
        stub = pb_grpc.EvalServiceStub(channel)

        # after: the trace came and was not sampled; a thumbs-down by gRPC queues its LLM span
        after, after_span = await asyncio.to_thread(app.answer, "It is 500 metres tall.")
        receipt = await stub.SubmitFeedback(feedback(after, thumbs=pb.THUMBS_DOWN, comment="wrong height"))
        assert (receipt.accepted, receipt.queued_for_judging, receipt.awaiting_trace) == (1, 1, 0)
        again = await stub.SubmitFeedback(feedback(after, thumbs=pb.THUMBS_DOWN, comment="wrong height"))
        assert (again.accepted, again.queued_for_judging) == (0, 0)  # the same feedback, stored once

        # before: a regenerate click over HTTP, for a trace the app has not exported yet
        before = "0af7651916cd43dd8448eb211c80319c"
        async with http.post("/v1/feedback", json={"trace_id": before, "regenerated": True}) as response:
            assert response.status == 200
            assert await response.json() == {"accepted": 1, "awaiting_trace": 1}
        # the app's trace with that id arrives afterwards (continuing a caller's trace)
        await asyncio.to_thread(app.answer, "330 metres.", before)

        # by span: the app records a regeneration in a new trace linking to the answer
        linked, linked_span = await asyncio.to_thread(app.answer, "Around 200 metres.")
        await asyncio.to_thread(app.regenerate, linked, linked_span)

        # praise is stored but judges nothing (nothing is sampled here)
        praised, _ = await asyncio.to_thread(app.answer, "It is 330 metres tall.")
        positive = await stub.SubmitFeedback(feedback(praised, rating=5, rating_max=5))
        assert (positive.accepted, positive.queued_for_judging) == (1, 0)

        async def evaluations(trace_id: str) -> list[Any]:
            return list((await stub.GetTrace(pb.GetTraceRequest(trace_id=trace_id))).evaluations)

        for trace_id, reason in ((after, "thumbs_down"), (before, "regenerated"), (linked, "regenerated")):
            await eventually(lambda t=trace_id: _has_evaluations(evaluations, t), timeout_s=20,  # type: ignore[misc]
                             what=f"trace {trace_id} judged")
            (judged,) = await evaluations(trace_id)
            assert judged.stratum == f"feedback:{reason}" and judged.probability == 1.0
            assert judged.metric == "faithfulness" and judged.service == "qa-app"
        assert (await evaluations(after))[0].score == pytest.approx(0.2)
        assert (await evaluations(after))[0].span_id == after_span
        assert (await evaluations(before))[0].score == pytest.approx(0.9)
        assert not await evaluations(praised)

        view = await stub.GetTrace(pb.GetTraceRequest(trace_id=after))
        assert [(f.thumbs, f.comment, f.source) for f in view.feedback] == [(pb.THUMBS_DOWN, "wrong height", "test")]
        async with http.get(f"/v1/traces/{praised}") as response:
            document = await response.json()
        assert document["feedback"][0]["rating"] == 1.0 and "evaluations" not in document
        span_feedback = (await stub.GetTrace(pb.GetTraceRequest(trace_id=linked))).feedback
        assert [(f.regenerated, f.span_id, f.source) for f in span_feedback] == [(True, linked_span, "span")]
        assert service.processors["judge_queue"].stats_store.feedback(after)  # stored with the statistics


async def _has_evaluations(evaluations: Any, trace_id: str) -> bool:
    return bool(await evaluations(trace_id))


async def test_bad_feedback_is_refused_naming_the_field(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as (_, eval_service, _app), \
            grpc.aio.insecure_channel(f"127.0.0.1:{eval_service.grpc_port}") as channel, \
            aiohttp.ClientSession(f"http://127.0.0.1:{eval_service.http_port}") as http:
        stub = pb_grpc.EvalServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SubmitFeedback(pb.SubmitFeedbackRequest(feedback=[
                pb.Feedback(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", thumbs=pb.THUMBS_UP),
                pb.Feedback(trace_id="not-a-trace", thumbs=pb.THUMBS_DOWN)]))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "feedback[1].trace_id" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.SubmitFeedback(feedback("4bf92f3577b34da6a3ce929d0e0e4736"))
        assert "carries nothing" in (empty.value.details() or "")
        async with http.post("/v1/feedback", json={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "rating": 9,
                                                    "rating_max": 5}) as response:
            assert response.status == 400
            assert "feedback[0].rating" in (await response.json())["error"]
        async with http.post("/v1/feedback", json={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "thumbs": "up",
                                                    "rating": "five"}) as response:
            assert response.status == 400
            error = (await response.json())["error"]
            # every bad field, and the spellings an enum takes
            assert "feedback[0].thumbs:" in error and "(one of THUMBS_UNSPECIFIED, THUMBS_UP, THUMBS_DOWN)" in error
            assert "feedback[0].rating:" in error
        async with http.post("/v1/feedback", data="{not json") as response:
            assert response.status == 400
        for nested in ("[" * 100_000, '{"feedback": [' + '{"labels": [' * 5_000):  # 500 before
            async with http.post("/v1/feedback", data=nested) as response:
                assert response.status == 400
        # a review-queue line's feedback posted without the reviewer's verdict filled in
        async with http.post("/v1/feedback", json={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "labels": [
                {"metric": "faithfulness", "passed": None}]}) as response:
            assert response.status == 400
            assert "feedback[0].labels[0].passed: required" in (await response.json())["error"]
        async with http.post("/v1/feedback", data=io.BytesIO(b"x" * (5 * 1024 * 1024))) as response:
            assert response.status == 413
        # nothing of a refused request was stored
        view = await stub.GetTrace(pb.GetTraceRequest(trace_id="4bf92f3577b34da6a3ce929d0e0e4736"))
        assert not view.feedback


@pytest.mark.parametrize(("change", "problem"), [
    (("  eval_service:\n", "  eval_service:\n    judge_queue: judge_queue/other\n"),
     "extensions.eval_service.judge_queue: no judge_queue processor 'judge_queue/other' in the pipelines"),
    (("    metrics: [faithfulness]\n", "    metrics: [faithfulness]\n    stats: {enabled: false}\n"),
     "extensions.eval_service.judge_queue: feedback is stored with the statistics, which are off"),
    (("  eval_service:\n", "  eval_service:\n    auth: {authenticator: file_storage}\n"),
     "extensions.eval_service.auth.authenticator: 'file_storage' must be a bearertokenauth extension"),
])
def test_validate_names_what_the_eval_service_cannot_use(tmp_path: Path, change: tuple[str, str],
                                                         problem: str) -> None:
    from tracejudge.processor.component.errors import ConfigError
    from tracejudge.processor.service.config import parse_config

    text = config("127.0.0.1:1", "http://127.0.0.1:1/v1", tmp_path).replace(*change)
    with pytest.raises(ConfigError) as error:
        parse_config(text, {})
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


async def test_the_eval_service_serves_tls_and_requires_its_token(tmp_path: Path,
                                                                   certificate: tuple[str, str]) -> None:
    cert, key = certificate
    tls = f"tls: {{cert_file: {cert}, key_file: {key}}}"
    text = config("127.0.0.1:1", "http://127.0.0.1:1/v1", tmp_path / "data").replace(
        "    grpc: {endpoint: 127.0.0.1:0}\n    http: {endpoint: 127.0.0.1:0}\n",
        f"    grpc: {{endpoint: 127.0.0.1:0, {tls}}}\n    http: {{endpoint: 127.0.0.1:0, {tls}}}\n"
        "    auth: {authenticator: bearertokenauth}\n  bearertokenauth: {token: s3cret}\n").replace(
        "extensions: [file_storage, eval_service]", "extensions: [file_storage, eval_service, bearertokenauth]")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running(text) as service:
        eval_service = service.extensions["eval_service"]
        credentials = grpc.ssl_channel_credentials(root_certificates=Path(cert).read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{eval_service.grpc_port}", credentials) as channel:
            stub = pb_grpc.EvalServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.SubmitFeedback(feedback(trace, thumbs=pb.THUMBS_UP))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            receipt = await stub.SubmitFeedback(feedback(trace, thumbs=pb.THUMBS_UP),
                                                metadata=(("authorization", "Bearer s3cret"),))
            assert receipt.accepted == 1
        context = ssl.create_default_context(cafile=cert)
        url = f"https://localhost:{eval_service.http_port}/v1/traces/{trace}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url, ssl=context) as response:
                assert response.status == 401
            async with http.get(url, ssl=context, headers={"Authorization": "Bearer s3cret"}) as response:
                assert response.status == 200 and len((await response.json())["feedback"]) == 1


async def test_feedback_waiting_for_its_trace_survives_a_restart(tmp_path: Path) -> None:
    trace = "5b8efff798038103d269b633813fc60c"
    async with pipeline(tmp_path) as (_, eval_service, _app), \
            grpc.aio.insecure_channel(f"127.0.0.1:{eval_service.grpc_port}") as channel:
        receipt = await pb_grpc.EvalServiceStub(channel).SubmitFeedback(feedback(trace, thumbs=pb.THUMBS_DOWN))
        assert (receipt.accepted, receipt.awaiting_trace) == (1, 1)  # given no time: stamped on arrival
    async with pipeline(tmp_path) as (_, eval_service, app), \
            grpc.aio.insecure_channel(f"127.0.0.1:{eval_service.grpc_port}") as channel:
        await asyncio.to_thread(app.answer, "It is 12 metres tall.", trace)
        stub = pb_grpc.EvalServiceStub(channel)

        async def judged() -> bool:
            return bool((await stub.GetTrace(pb.GetTraceRequest(trace_id=trace))).evaluations)

        await eventually(judged, timeout_s=20, what="the trace judged after the restart")
        (evaluation,) = (await stub.GetTrace(pb.GetTraceRequest(trace_id=trace))).evaluations
        assert evaluation.stratum == "feedback:thumbs_down"


async def test_feedback_spans_with_statistics_off_are_forwarded_and_warned_about_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = config("127.0.0.1:1", "http://127.0.0.1:1/v1", tmp_path / "data").replace(
        "    metrics: [faithfulness]\n", "    metrics: [faithfulness]\n    stats: {enabled: false}\n").replace(
        "  eval_service:\n    grpc: {endpoint: 127.0.0.1:0}\n    http: {endpoint: 127.0.0.1:0}\n", "").replace(
        "extensions: [file_storage, eval_service]", "extensions: [file_storage]")
    async with CaptureServer() as downstream:
        text = text.replace('endpoint: "127.0.0.1:1"', f'endpoint: "{downstream.endpoint}"')
        async with running(text) as service:
            app = App(grpc_target(service))
            for _ in range(2):
                trace, span = await asyncio.to_thread(app.answer, "It is 330 metres tall.")
                await asyncio.to_thread(app.regenerate, trace, span)
            app.provider.shutdown()
            await downstream.wait_for_requests(6)  # every span forwarded (one per request), feedback ones too
    warnings = [r.message for r in caplog.records if "feedback in span attributes is ignored" in r.message]
    assert len(warnings) == 1
