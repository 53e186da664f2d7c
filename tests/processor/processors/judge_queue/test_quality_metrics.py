"""Quality as Prometheus series with exemplars, scraped by a real Prometheus and read back through its HTTP API;
cardinality bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from tests.processor.processors.judge_queue.test_stage import EXPORT, judging_config
from tests.support.openai_server import Completion, OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.prometheus import PrometheusServer, prometheus_binary
from tests.support.requests import export_request
from tests.support.waiting import eventually
from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.verdict import Verdict
from tracejudge.processor.processors.judge_queue.quality_metrics import QualityMetrics, QualitySeries

LOW = Completion(content='{"score": 0.2, "label": "fail", "explanation": "not supported by the context"}')


def low_verdicts(request: dict[str, Any]) -> Completion:
    return LOW


async def test_prometheus_scrapes_quality_per_series_with_the_trace_of_a_low_score(tmp_path: Path) -> None:
    binary = prometheus_binary()
    request = export_request(spans=1, llm_every=1)
    llm = request.resource_spans[0].scope_spans[0].spans[0]
    async with CaptureServer() as downstream, OpenAiServer(low_verdicts) as heavy:
        config = judging_config(downstream.endpoint, heavy.base_url, tmp_path / "data",
                                metrics_address="127.0.0.1:0")
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            (tmp_path / "prometheus").mkdir()
            with PrometheusServer(binary, tmp_path / "prometheus", f"127.0.0.1:{service.metrics_port}") as prometheus:
                fails = 'tracejudge_quality_verdicts_total{outcome="fail",metric="relevancy"}'

                async def scraped() -> list[dict[str, Any]]:
                    return await prometheus.query(fails)

                await eventually(scraped, timeout_s=30, what="the failed verdict in Prometheus")
                (sample,) = await prometheus.query(fails)
                assert sample["metric"]["service"] == "checkout" and float(sample["value"][1]) == 1
                failing = await prometheus.query(  # what an alert rule on quality would read
                    'sum(tracejudge_quality_verdicts_total{outcome="fail"}) / sum(tracejudge_quality_verdicts_total'
                    '{outcome=~"pass|fail"})')
                assert float(failing[0]["value"][1]) == 1
                exemplars = await prometheus.exemplars('tracejudge_quality_score_bucket{metric="relevancy"}')
                assert {e["labels"]["trace_id"] for e in exemplars} == {llm.trace_id.hex()}
                assert {e["labels"]["span_id"] for e in exemplars} == {llm.span_id.hex()}


def test_series_beyond_the_limit_are_counted_together() -> None:
    registry = CollectorRegistry()
    quality = QualitySeries(QualityMetrics(registry), max_series=2)
    result = CascadeVerdict(Verdict("relevancy", 0.9, "pass", tier="local"))
    for service in ("a", "b", "c", "d"):
        quality.verdict({"service": service, "prompt_version": "v1", "request_model": "m"}, "relevancy", result,
                        "ab" * 16, "cd" * 8)
    count = registry.get_sample_value
    assert [count("tracejudge_quality_verdicts_total", {"service": s, "prompt_version": v, "model": m,
                                                         "metric": "relevancy", "outcome": "pass"})
            for s, v, m in (("a", "v1", "m"), ("b", "v1", "m"), ("_other", "_other", "_other"))] == [1, 1, 2]
    assert count("tracejudge_quality_series", {}) == 2
    assert json.dumps(count("tracejudge_quality_score_count", {"service": "c", "prompt_version": "v1", "model": "m",
                                                              "metric": "relevancy"})) == "null"
