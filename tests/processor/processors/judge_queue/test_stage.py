"""The `judge_queue` stage: sampled spans are committed before the Export call is acknowledged, judged off the
request path with their trace's retrieved documents as context, and the results come back as evaluation spans."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from types import MappingProxyType

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.metrics import metric, scraped, scraped_is
from tests.support.openai_server import Completion, OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.process import TRACEJUDGE, free_port, tracejudge
from tests.support.requests import export_request
from tests.support.waiting import eventually
from tracejudge.processor.component.decisions import Decision
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.llm_span import LlmSpan
from tracejudge.processor.processors.judge_queue.config import RouteRule
from tracejudge.processor.service.decision_log import read_decisions

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
VERDICT = Completion(content='{"score": 0.9, "label": "pass", "explanation": "supported by the context"}')
DOCUMENT = "Paris has been the capital of France since 987."


def rag_trace() -> tuple[ExportTraceServiceRequest, Span]:
    """A root span, an OpenInference retriever child and an OTel GenAI chat child, in one trace."""
    request = export_request(spans=3, llm_every=0)
    request.resource_spans[0].resource.attributes.add(key="openinference.project.name").value.string_value = "shop"
    root, retriever, llm = request.resource_spans[0].scope_spans[0].spans
    for child in (retriever, llm):
        child.parent_span_id = root.span_id
    retriever.attributes.add(key="openinference.span.kind").value.string_value = "RETRIEVER"
    retriever.attributes.add(key="retrieval.documents.0.document.content").value.string_value = DOCUMENT
    llm_only = export_request(spans=1, llm_every=1).resource_spans[0].scope_spans[0].spans[0]
    llm.attributes.extend(llm_only.attributes)
    return request, llm


def evaluation_spans(capture: CaptureServer) -> list[tuple[Span, dict[str, str]]]:
    """Each evaluation span received, with its resource's attributes."""
    found = []
    for raw in capture.requests:
        for resource_spans in ExportTraceServiceRequest.FromString(raw).resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            found += [(span, resource) for ss in resource_spans.scope_spans for span in ss.spans
                      if span.name == "tracejudge.evaluation"]
    return found


def attributes(holder: Span | Span.Event) -> dict[str, object]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in holder.attributes}


def judging_config(downstream: str, heavy_url: str, data: Path, grpc_endpoint: str = "127.0.0.1:0",
                   local: str = "embedded", metrics_address: str = "", limits: str = "pause: 0s",
                   processes: int = 0) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{grpc_endpoint}"
processors:
  llm_extract:
  sampler:
    rate: 1.0
  judge_queue:
    storage: file_storage
    metrics: [faithfulness, relevancy]
    decision_wait: 0s
    max_decision_wait: 0s
    workers:
      processes: {processes}
      poll_interval: 20ms
      lease: 2s
      retry_backoff: 100ms
    judges:
      local:
        judge: {local}
      heavy:
        judge: openai
        server:
          base_url: "{heavy_url}"
          model: judge-model
          max_retries: 0
          usd_per_million_input_tokens: 1.0
        limits: {{{limits}}}
      cascade:
        uncertainty_band: [0.0, 1.0]
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
  telemetry:
    metrics:
      address: "{metrics_address}"
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, sampler, judge_queue]
      exporters: [otlp]
"""


async def test_a_judged_span_gets_an_evaluation_span_under_it_with_its_trace_context(tmp_path: Path) -> None:
    request, llm = rag_trace()
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path)
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: len(evaluation_spans(downstream)) == 1, what="an evaluation span")

            async def judged() -> bool:
                found = await service.decisions.for_trace(llm.trace_id.hex())
                return sum(d.decision == "judged" for d in found) == 2
            await eventually(judged, what="judged decisions")
            decisions = await service.decisions.for_trace(llm.trace_id.hex())
    ((span, resource),) = evaluation_spans(downstream)
    assert (span.trace_id, span.parent_span_id) == (llm.trace_id, llm.span_id)
    # from service tracejudge, filed by Phoenix under the judged span's project
    assert resource == {"service.name": "tracejudge", "openinference.project.name": "shop"}
    events = {attributes(e)["gen_ai.evaluation.name"]: attributes(e) for e in span.events}
    assert set(events) == {"faithfulness", "relevancy"}
    for event in events.values():
        assert (event["gen_ai.evaluation.score.value"], event["gen_ai.evaluation.score.label"]) == (0.9, "pass")
        assert (event["tracejudge.tier"], event["tracejudge.escalation"]) == ("heavy", "uncertain")
        assert event["tracejudge.judge.model"] == "judge-model" and event["tracejudge.cost_usd"] > 0
    span_attributes = attributes(span)
    assert (span_attributes["tracejudge.sample.probability"], span_attributes["tracejudge.sample.stratum"]) == (
        1.0, "uniform")
    # The retriever span's document reached the judge as the LLM span's context.
    faithfulness = next(r for r in heavy.requests if "every claim" in r["messages"][0]["content"])
    assert json.loads(faithfulness["messages"][1]["content"])["context"] == DOCUMENT
    in_order = [d.decision for d in decisions if d.span_id == llm.span_id.hex() and not d.metric]
    assert in_order == ["extracted", "queued"]  # in the order the stages decided, as explain lists them
    fates = sorted((d.decision, d.metric) for d in decisions if d.span_id == llm.span_id.hex())
    assert fates == [("extracted", ""), ("judged", "faithfulness"), ("judged", "relevancy"), ("queued", "")]
    # ... and `tracejudge explain` tells the same story from the files, after the service has stopped.
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config)
    explained = subprocess.run([*TRACEJUDGE, "explain", llm.trace_id.hex(), "--config", str(config_file)],
                               capture_output=True, text=True, check=False)
    assert explained.returncode == 0, explained.stderr
    assert f"span {llm.span_id.hex()}" in explained.stdout
    assert "judged [faithfulness]  score=0.90 pass tier=heavy judge_model=judge-model escalation=uncertain" in (
        explained.stdout)
    assert "extracted  content from span attributes" in explained.stdout
    unknown = subprocess.run([*TRACEJUDGE, "explain", "ab" * 16, "--config", str(config_file)],
                             capture_output=True, text=True, check=False)
    assert unknown.returncode == 1 and "no decision records" in unknown.stderr
    # The original spans were forwarded unchanged, before and independently of judging.
    assert downstream.requests[0] == request.SerializeToString()


def item_states(path: Path) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT state, count(*) FROM items GROUP BY state").fetchall()


async def test_kill_9_while_judging_then_restart_judges_every_committed_item(tmp_path: Path) -> None:
    port = free_port()
    request = export_request(spans=4, llm_every=2)  # two LLM spans: four items
    llm_spans = [s for s in request.resource_spans[0].scope_spans[0].spans
                 if any(a.key == "gen_ai.operation.name" for a in s.attributes)]
    expected = {(s.span_id, metric) for s in llm_spans for metric in ("faithfulness", "relevancy")}
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        heavy.fail_next(200, delay_s=60, times=100)  # every call hangs: judging is in progress when killed
        config = tmp_path / "config.yaml"
        config.write_text(judging_config(downstream.endpoint, heavy.base_url, tmp_path / "data",
                                         f"127.0.0.1:{port}"))
        with tracejudge(config) as process:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: len(heavy.requests) >= 1, what="a judge call in flight")
            await downstream.wait_for_requests(1)  # forwarded while the judge hangs: judging never holds it
            assert downstream.requests[0] == request.SerializeToString()
            process.send_signal(signal.SIGKILL)
        heavy.clear_faults()
        with tracejudge(config) as process:
            await eventually(lambda: results(downstream) == expected, timeout_s=20,
                             what="evaluation results for every item after the restart")
            # an item completes after its results are sent and its scores stored
            await eventually(lambda: item_states(tmp_path / "data" / "judge_queue.db") == [("done", 4)],
                             what="every item done")
            # killed again at once: the items' decision records were written with them, not held in memory
            process.send_signal(signal.SIGKILL)

        def recorded() -> list[tuple[str, str]]:
            records = read_decisions(str(tmp_path / "data" / "decisions.db"), llm_spans[0].trace_id.hex())
            return sorted((d.decision, d.metric) for d in records if d.metric)

        with tracejudge(config):
            # No retriever and no documents: faithfulness is not judgeable, and says so instead of guessing.
            await eventually(lambda: recorded() == [
                ("judged", "relevancy"), ("judged", "relevancy"), ("unjudged: no_context", "faithfulness"),
                ("unjudged: no_context", "faithfulness")], what="every item's record, relayed after the restart")


def results(capture: CaptureServer) -> set[tuple[bytes, object]]:
    return {(span.parent_span_id, attributes(e)["gen_ai.evaluation.name"]) for span, _ in evaluation_spans(capture)
            for e in span.events}


@pytest.mark.parametrize("processes", [0, 1], ids=["in-process", "worker-process"])
async def test_an_auth_error_pauses_the_heavy_tier_until_resumed_over_http_and_nothing_is_scored_meanwhile(
        tmp_path: Path, processes: int) -> None:
    """In a worker process the tier's gate is there: its metrics reach /metrics and the resume is passed on."""
    request, llm = rag_trace()
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        heavy.fail_next(401, message="invalid api key", times=2)  # both items' calls
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path, local="none",
                                metrics_address="127.0.0.1:0", processes=processes)
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: scraped_is(1, service, "tracejudge_judge_tier_paused", tier="heavy"),
                             what="the heavy tier paused")
            calls = len(heavy.requests)
            await eventually(lambda: scraped_is(2, service, "tracejudge_judge_queue_waiting"), what="items waiting")
            assert evaluation_spans(downstream) == [] and len(heavy.requests) == calls  # retried, not sent

            async def waiting() -> bool:
                records = await service.decisions.for_trace(llm.trace_id.hex())
                return {(d.decision, d.metric) for d in records} >= {
                    ("waiting: tier_paused", "faithfulness"), ("waiting: tier_paused", "relevancy")}

            await eventually(waiting, what="explain shows the items waiting for the paused tier")
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{service.metrics_port}/judge/tiers/heavy/resume"
                async with session.post(url) as response:
                    assert response.status == 200
                async with session.post(url.replace("heavy", "nope")) as response:
                    assert response.status == 404
                    assert (await response.json())["error"] == "no judge tier 'nope' in this configuration"
            await eventually(lambda: results(downstream) == {(llm.span_id, "faithfulness"), (llm.span_id, "relevancy")},
                             what="judged after the resume")
            assert await scraped(service, "tracejudge_judge_tier_paused", tier="heavy") == 0
    scores = {attributes(e)["gen_ai.evaluation.score.value"] for span, _ in evaluation_spans(downstream)
              for e in span.events}
    assert scores == {0.9}  # the auth failure never became a score


async def test_a_nearly_spent_heavy_budget_scales_the_sampler_down_and_says_so(tmp_path: Path) -> None:
    costly = Completion(content=VERDICT.content, prompt_tokens=1000)  # 0.001 USD per call at 1 USD per million
    async with CaptureServer() as downstream, OpenAiServer(costly) as heavy:
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path,
                                limits="daily_budget_usd: 0.0015, low_budget_fraction: 0.5, concurrency: 1")
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            first, _ = rag_trace()
            await channel.unary_unary(EXPORT)(first.SerializeToString(), timeout=10)
            await eventually(lambda: metric(service, "tracejudge_sampling_scale") < 1, what="the sampler scaled down")
            scale = metric(service, "tracejudge_sampling_scale")
            second, llm = rag_trace()
            await channel.unary_unary(EXPORT)(second.SerializeToString(), timeout=10)

            async def decided() -> list[Decision]:
                return [d for d in await service.decisions.for_trace(llm.trace_id.hex())
                        if d.decision in ("queued", "sampled out")]

            await eventually(decided, what="the sampling decision recorded")  # `queued` comes through the outbox
            (decision,) = await decided()
    # one heavy call spent 0.001 of 0.0015: a third left, under the 0.5 mark, so rates run at (1/3) / 0.5
    assert abs(scale - 2 / 3) < 1e-6
    detail = json.loads(decision.detail)
    assert (detail["scale"], detail["probability"]) == (scale, scale)  # the recorded p is the true one


def test_route_rules_match_every_condition_they_give() -> None:
    span = LlmSpan(trace_id="ab" * 16, span_id="01" * 8, parent_span_id="", service="shop", convention="gen_ai",
                   status="error", attributes=MappingProxyType({"customer.tier": "Enterprise"}))
    failed = (EvaluationResult("tracejudge.check.pii", 0.0, "fail"),)
    passed = (EvaluationResult("tracejudge.check.pii", 1.0, "pass"),)
    assert RouteRule("vip", attribute="customer.tier", equals="enterprise").matches(span, ())
    assert not RouteRule("vip", attribute="customer.tier", equals="free").matches(span, ())
    assert RouteRule("any", attribute="customer.tier").matches(span, ())
    assert RouteRule("checks", failed_check=True).matches(span, failed)
    assert not RouteRule("checks", failed_check=True).matches(span, passed)
    assert not RouteRule("both", status="error", failed_check=True).matches(span, passed)


async def test_a_refused_request_leaves_nothing_to_judge_and_its_retry_is_judged_once(tmp_path: Path) -> None:
    fillers = [export_request(spans=1), export_request(spans=1)]
    request, llm = rag_trace()
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path).replace(
            "    tls:\n      insecure: true\n",
            "    tls:\n      insecure: true\n    sending_queue: {queue_size: 1, num_consumers: 1}\n", 1)
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            export = channel.unary_unary(EXPORT)
            downstream.hold()  # the one consumer blocks on the first filler, the queue holds the second
            await export(fillers[0].SerializeToString(), timeout=10)
            await eventually(lambda: downstream.calls == 1, what="the consumer is busy")
            await export(fillers[1].SerializeToString(), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await export(request.SerializeToString(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            stage = service.processors["judge_queue"]
            assert stage._queue.waiting() == 0  # nothing reserved, queued or leased for the refused request
            assert await service.decisions.for_trace(llm.trace_id.hex()) == []  # no stage recorded it either
            downstream.release()
            await downstream.wait_for_requests(2)
            await export(request.SerializeToString(), timeout=10)  # the client's retry
            await eventually(lambda: len(evaluation_spans(downstream)) == 1, what="judged once accepted")
            await stage.idle(timeout_s=10)
            assert len(evaluation_spans(downstream)) == 1


def test_a_judge_reads_the_beginning_of_huge_texts_and_the_record_says_what_was_cut() -> None:
    from tracejudge.processor.pdata.llm_span import Message
    from tracejudge.processor.pdata.sample import Sample, SamplingDecision
    from tracejudge.processor.processors.judge_queue.items import MAX_CONTEXT_CHARS, MAX_TEXT_CHARS, item_body

    huge = LlmSpan(trace_id="ab" * 16, span_id="cd" * 8, parent_span_id="", service="s", convention="gen_ai",
                   input_messages=(Message("user", "q?"),), output_messages=(Message("assistant", "a" * 18_000_000),),
                   documents=("d" * 200_000, "e" * 200_000))
    body = item_body(Sample(huge, SamplingDecision(True, 1.0, "uniform", True)), "")
    assert len(body["response"]) == MAX_TEXT_CHARS and body["query"] == "q?"
    assert sum(len(d) for d in body["documents"]) == MAX_CONTEXT_CHARS
    assert body["truncated"] == {"response": 18_000_000, "documents": 400_000}
    assert len(json.dumps(body)) < 2 * (MAX_TEXT_CHARS + MAX_CONTEXT_CHARS)


async def test_judged_items_are_deleted_once_past_their_retention(tmp_path: Path) -> None:
    request, _ = rag_trace()
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path).replace(
            "    decision_wait: 0s\n", "    decision_wait: 0s\n    retention: {max_age: 500ms}\n", 1)
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: len(evaluation_spans(downstream)) == 1, what="an evaluation span")
            # the judged items (with their prompts, answers and context) go by the next sweeps
            await eventually(lambda: item_states(tmp_path / "judge_queue.db") == [], timeout_s=5,
                             what="the judged items deleted")


async def test_the_heavy_tier_gets_redacted_text_and_the_decision_record_says_what_was_replaced(
        tmp_path: Path) -> None:
    request, llm = rag_trace()
    for attribute in llm.attributes:
        if attribute.key == "gen_ai.output.messages":
            attribute.value.string_value = attribute.value.string_value.replace("Paris.", "Paris. Ask ann@corp.example")
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path)
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)

            async def judged() -> list[Decision]:
                return [d for d in await service.decisions.for_trace(llm.trace_id.hex()) if d.decision == "judged"]

            await eventually(judged, what="judged decisions")
            records = await judged()
    assert all("ann@corp.example" not in json.dumps(r) for r in heavy.requests)
    assert any("[EMAIL]" in json.dumps(r) for r in heavy.requests)
    assert {json.loads(r.detail)["redacted"]["email"] for r in records} == {1}
