"""The `judge_queue` stage: sampled spans are committed before the Export call is acknowledged (kill -9 test)."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import grpc

from tests.support.otlp_capture import CaptureServer
from tests.support.process import free_port, tracejudge
from tests.support.requests import export_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def test_sampled_spans_are_in_the_judge_queue_once_acknowledged_even_after_kill_9(tmp_path: Path) -> None:
    port = free_port()
    async with CaptureServer() as downstream:
        config = tmp_path / "config.yaml"
        config.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{port}"}}
processors:
  llm_extract:
  sampler: {{rate: 1.0}}
  judge_queue: {{storage: file_storage, metrics: [faithfulness, relevancy]}}
exporters:
  otlp: {{endpoint: "{downstream.endpoint}", tls: {{insecure: true}}}}
extensions:
  file_storage: {{directory: "{tmp_path / 'data'}"}}
service:
  extensions: [file_storage]
  telemetry: {{metrics: {{address: ""}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [llm_extract, sampler, judge_queue], exporters: [otlp]}}
""")
        request = export_request(spans=4, llm_every=2)  # two LLM spans
        with tracejudge(config) as process:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
                await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)  # a client's retry
            process.send_signal(signal.SIGKILL)
    rows = sqlite3.connect(tmp_path / "data" / "judge_queue.db").execute(
        "SELECT span_id, metric, state, body FROM items ORDER BY span_id, metric").fetchall()
    spans = request.resource_spans[0].scope_spans[0].spans
    assert [(span_id, metric, state) for span_id, metric, state, _ in rows] == [
        (spans[i].span_id.hex(), metric, "queued") for i in (0, 2) for metric in ("faithfulness", "relevancy")]
    body = json.loads(rows[0][3])
    assert (body["query"], body["response"], body["probability"], body["stratum"]) == (
        "What is the capital of France?", "Paris.", 1.0, "uniform")
