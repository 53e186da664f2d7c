"""A fleet, end to end: PostgreSQL, three `tracejudge serve` instances sharing it, and the OpenTelemetry Collector
in front (its loadbalancing exporter routing by trace id). An app instrumented with the official OpenAI
instrumentation sends steady traffic through the Collector, then its provider silently changes model; one
instance is killed with kill -9 mid-run and started again; one judges in a worker process of its own. Beside
that, a trace is split by hand (its retriever span to one instance, its LLM span to another) and feedback on it is
posted to the third. Then: one committed verdict per sampled (span, metric), one model_change alert for the
fleet, every span forwarded, the shared daily budget held, the cross-instance context and the feedback joined.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.test_alerts import CALLS, CHANGE_AT, REPO, model, spans_named
from tests.support.openai_server import Completion, OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.postgres import PostgresServer
from tests.support.process import TRACEJUDGE, free_port
from tests.support.requests import export_request
from tests.support.waiting import eventually

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
COLLECTOR_ENV = "TRACEJUDGE_OTELCOL_LB"
DOCUMENT = "The Eiffel Tower is 330 metres tall and stands in Paris."
USD_PER_CALL = 0.001  # the judge reports 1000 input tokens a call, at 1 USD per million
MAIN_CALLS = CALLS + 2  # the app's spans (relevancy; no context, so faithfulness needs no call), the split trace's two
BUDGET_USD = USD_PER_CALL * (MAIN_CALLS + 10)
EXTRA = 60  # spans sent once the main traffic is judged: the budget has room for about ten of them


def collector_binary() -> str:
    """$TRACEJUDGE_OTELCOL_LB, else build/otelcol-lb; skips locally when neither exists, fails in CI."""
    configured = os.environ.get(COLLECTOR_ENV) or str(REPO / "build" / "otelcol-lb")
    if os.access(configured, os.X_OK):
        return os.path.abspath(configured)
    message = f"no Collector with the loadbalancing exporter at {configured}: run `make otelcol-lb`"
    if os.environ.get("CI", "").lower() not in ("", "0", "false") or os.environ.get(COLLECTOR_ENV):
        pytest.fail(message)
    pytest.skip(message)


def judge(request: dict[str, Any]) -> Completion:
    """Scores the right capital high and the wrong one low; the split trace's answer high if its context came."""
    content = json.loads(request["messages"][-1]["content"])
    good = "Paris" in content["response"]
    return Completion(content=json.dumps({"score": 0.9 if good else 0.1, "label": "pass" if good else "fail",
                                          "explanation": "scripted"}), system_fingerprint=None, prompt_tokens=1000)


def instance_config(index: int, ports: dict[str, int], downstream: str, judge_url: str, data: Path) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
processors:
  llm_extract:
    attributes: {{prompt_version: app.prompt.version}}
  sampler: {{rate: 1.0, storage: postgresql}}
  judge_queue:
    storage: postgresql
    metrics: [faithfulness, relevancy]
    decision_wait: 0s
    max_decision_wait: 0s
    workers: {{processes: {1 if index == 0 else 0}, count: 1, poll_interval: 50ms, lease: 3s, retry_backoff: 200ms}}
    judges:
      local:
        judge: openai
        server: {{base_url: "{judge_url}", model: judge-model, max_retries: 0,
                  usd_per_million_input_tokens: 1.0}}
        limits: {{concurrency: 1, daily_budget_usd: {BUDGET_USD}, low_budget_fraction: 0}}
      cache_ttl: 0s
    stats: {{warmup: 100}}
exporters:
  otlp:
    endpoint: "{downstream}"
    tls: {{insecure: true}}
    sending_queue: {{storage: file_storage}}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 500ms}}
extensions:
  file_storage: {{directory: "{data / f'instance{index}'}"}}
  postgresql: {{dsn: "${{env:TRACEJUDGE_PG_DSN}}"}}
  eval_service: {{http: {{endpoint: "127.0.0.1:{ports['eval']}"}}}}
service:
  extensions: [file_storage, postgresql, eval_service]
  decisions: {{storage: postgresql}}
  telemetry: {{metrics: {{address: "127.0.0.1:{ports['metrics']}"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, sampler, judge_queue]
      exporters: [otlp]
"""


def collector_config(port: int, instances: list[int]) -> str:
    hostnames = ", ".join(f"127.0.0.1:{p}" for p in instances)
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{port}"}}
exporters:
  load_balancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{insecure: true}}
        timeout: 5s
        retry_on_failure: {{enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 120s}}
    resolver:
      static: {{hostnames: [{hostnames}]}}
service:
  telemetry: {{metrics: {{level: none}}, logs: {{level: warn}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [load_balancing]}}
"""


class Instance:
    """One `tracejudge serve` process, its log in a file (a pipe nobody reads would block it)."""

    def __init__(self, index: int, config: Path, env: dict[str, str], ports: dict[str, int]) -> None:
        self.index, self.config, self.env, self.ports = index, config, env, ports
        self.log = config.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([*TRACEJUDGE, "serve", "--config", str(self.config)], stderr=log,
                                            env=self.env, cwd=REPO)
        deadline = time.monotonic() + 60
        while "tracejudge is running" not in self.log.read_text(errors="replace").split("--- start")[-1]:
            assert self.process.poll() is None, f"instance {self.index} exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"instance {self.index} did not start:\n{self.tail()}"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        with self.log.open("a") as log:
            log.write("\n--- start\n")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def fleet(count: int, downstream: str, judge_url: str, dsn: str, data: Path) -> Iterator[list[Instance]]:
    env = dict(os.environ) | {"TRACEJUDGE_PG_DSN": dsn}
    instances = []
    for index in range(count):
        ports = {name: free_port() for name in ("grpc", "eval", "metrics")}
        config = data / f"instance{index}.yaml"
        config.write_text(instance_config(index, ports, downstream, judge_url, data))
        instances.append(Instance(index, config, env, ports))
    try:
        for instance in instances:
            instance.start()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


@contextmanager
def collector(instances: list[Instance], data: Path) -> Iterator[int]:
    port = free_port()
    config = data / "collector.yaml"
    config.write_text(collector_config(port, [i.ports["grpc"] for i in instances]))
    log = (data / "collector.log").open("wb")
    process = subprocess.Popen([collector_binary(), "--config", str(config)], stdout=log, stderr=log)
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()


def split_trace() -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest, str, str]:
    """One trace as two requests: its root and retriever span, and its LLM span (trace id, LLM span id)."""
    request = export_request(spans=3, llm_every=0)
    root, retriever, llm = request.resource_spans[0].scope_spans[0].spans
    for child in (retriever, llm):
        child.parent_span_id = root.span_id
    retriever.attributes.add(key="openinference.span.kind").value.string_value = "RETRIEVER"
    retriever.attributes.add(key="retrieval.documents.0.document.content").value.string_value = DOCUMENT
    llm.attributes.extend(export_request(spans=1, llm_every=1).resource_spans[0].scope_spans[0].spans[0].attributes)
    llm.start_time_unix_nano = retriever.end_time_unix_nano + 1
    first, second = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    first.CopyFrom(request)
    del first.resource_spans[0].scope_spans[0].spans[2]
    second.CopyFrom(request)
    del second.resource_spans[0].scope_spans[0].spans[:2]
    return first, second, llm.trace_id.hex(), llm.span_id.hex()


async def export(instance: Instance, request: ExportTraceServiceRequest) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{instance.ports['grpc']}") as channel:
        await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=30)


def query(dsn: str, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.encode() if not parameters else sql, parameters or None).fetchall()


def evaluations_count(dsn: str) -> int:
    return int(query(dsn, "SELECT count(*) FROM judge_queue_stats.evaluations")[0][0])


async def test_a_fleet_behind_the_collector_keeps_one_truth(tmp_path: Path, postgres: PostgresServer) -> None:
    dsn = postgres.database("fleet")
    env = dict(os.environ) | {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}
    app_code = ("import sys; from tests.e2e.test_alerts import run_app; "
                "run_app(sys.argv[1], sys.argv[2], int(sys.argv[3]))")
    async with CaptureServer() as downstream, OpenAiServer(model(CHANGE_AT)) as provider, \
            OpenAiServer(judge) as judge_server:
        with fleet(3, downstream.endpoint, judge_server.base_url, dsn, tmp_path) as instances, \
                collector(instances, tmp_path) as collector_port:
            first, second, trace, llm_span = split_trace()
            await export(instances[0], first)  # the retriever's documents, committed by instance 0
            await export(instances[1], second)  # the LLM span, at instance 1
            app = await asyncio.create_subprocess_exec(sys.executable, "-c", app_code, provider.base_url,
                                                       f"127.0.0.1:{collector_port}", str(CALLS), cwd=REPO, env=env)
            await eventually(lambda: len(provider.requests) >= CALLS // 2, timeout_s=120, what="half the calls")
            await asyncio.to_thread(instances[2].kill)  # mid-run
            await asyncio.sleep(0.5)
            await asyncio.to_thread(instances[2].start)
            assert await asyncio.wait_for(app.wait(), timeout=180) == 0

            async def judged() -> bool:
                return await asyncio.to_thread(evaluations_count, dsn) == MAIN_CALLS

            await eventually(judged, timeout_s=180, what="every sampled span judged")
            async with aiohttp.ClientSession() as http:  # feedback to the third instance, on a trace of the second
                third = f"http://127.0.0.1:{instances[2].ports['eval']}"
                async with http.post(f"{third}/v1/feedback", json={"trace_id": trace, "thumbs": "THUMBS_DOWN",
                                                                    "comment": "wrong height"}) as response:
                    assert response.status == 200, await response.text()
                async with http.get(f"http://127.0.0.1:{instances[0].ports['eval']}/v1/traces/{trace}") as response:
                    view = await response.json()
            await eventually(lambda: len({s.span_id for s in spans_named(downstream, "tracejudge.alert")}) >= 1,
                             timeout_s=60, what="the alert span")

            for index in range(EXTRA):  # beyond the budget: at most the calls in flight overrun it
                extra = export_request(spans=1, llm_every=1)
                await export(instances[index % 3], extra)
            await asyncio.sleep(3)
            spent = await asyncio.to_thread(query, dsn, "SELECT coalesce(sum(usd), 0) FROM judge_queue.spend")
            waiting = await asyncio.to_thread(
                query, dsn, "SELECT count(*) FROM decisions.decisions WHERE decision = 'waiting: budget_exhausted'")

    print(f"\nfleet: {evaluations_count(dsn)} evaluations, spend {float(spent[0][0]):.4f} of {BUDGET_USD:.4f} USD, "
          f"{int(waiting[0][0])} item(s) waiting for budget, {len(judge_server.requests)} judge calls")
    # one committed verdict per sampled (span, metric): every item once, done
    items = query(dsn, "SELECT span_id, metric, count(*), min(state) FROM judge_queue.items GROUP BY span_id, metric "
                       "HAVING count(*) > 1 OR min(state) <> 'done'")
    extra_ids = {r[0] for r in query(dsn, "SELECT span_id FROM judge_queue.items WHERE state <> 'done'")}
    assert [row for row in items if row[0] not in extra_ids] == []
    evaluations = query(dsn, "SELECT count(*), count(DISTINCT (span_id, metric)) FROM judge_queue_stats.evaluations")
    assert evaluations[0][0] == evaluations[0][1] >= MAIN_CALLS
    # one model_change alert for the fleet, and its span sent once (by id)
    assert query(dsn, "SELECT cause, count(*) FROM judge_queue_stats.alerts GROUP BY cause") == [("model_change", 1)]
    assert len({s.span_id for s in spans_named(downstream, "tracejudge.alert")}) == 1
    # every span the app sent reached the backend through whichever instance took it
    app_spans = {s.span_id for s in spans_named(downstream, "chat gpt-4o")}
    assert len(app_spans) == CALLS
    # the shared budget: spend never beyond it by more than the calls in flight (one per instance)
    assert float(spent[0][0]) <= BUDGET_USD + 3 * USD_PER_CALL
    assert int(waiting[0][0]) > 0  # the rest wait for tomorrow's budget
    # the split trace: judged at instance 1 against the documents instance 0 received
    (context,) = query(dsn, "SELECT detail FROM decisions.decisions WHERE span_id = %s AND metric = 'faithfulness' "
                            "AND decision = 'judged'", llm_span)
    assert json.loads(context[0])["context"] == "retrieved documents"
    assert any(DOCUMENT in json.dumps(r) for r in judge_server.requests)
    # feedback posted to instance 2 joined the trace instance 1 judged, as instance 0 reports it
    assert {e["metric"] for e in view["evaluations"]} >= {"faithfulness", "relevancy"}
    assert [f["comment"] for f in view["feedback"]] == ["wrong height"]
