"""A judge tier whose calls fail is degraded from its first failure — health check, /metrics, log — and recovers
with its first good verdict."""

from __future__ import annotations

from pathlib import Path

import grpc

from tests.processor.processors.judge_queue.test_stage import EXPORT, VERDICT, judging_config, rag_trace
from tests.support.metrics import metric
from tests.support.openai_server import OpenAiServer
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.waiting import eventually

HEAVY = "processors/judge_queue tier heavy"


async def test_a_failing_heavy_tier_is_degraded_at_once_and_recovers_with_a_good_verdict(tmp_path: Path) -> None:
    async with CaptureServer() as downstream, OpenAiServer(VERDICT) as heavy:
        heavy.fail_next(500, message="the judge server is down", times=1000)
        async with running(judging_config(downstream.endpoint, heavy.base_url, tmp_path)) as service, \
                grpc.aio.insecure_channel(grpc_target(service)) as channel:
            request, _ = rag_trace()
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: HEAVY in service.status.degraded, timeout_s=20, what="the heavy tier degraded")
            # the local verdict stood in: the first failure is already known, without waiting for any give-up
            assert service.status.degraded[HEAVY] == "http_500 (the local verdict was kept)"
            assert metric(service, "tracejudge_component_degraded", component=HEAVY) == 1
            heavy.clear_faults()
            request, _ = rag_trace()
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: HEAVY not in service.status.degraded, timeout_s=30, what="the tier recovered")
            assert metric(service, "tracejudge_component_degraded", component=HEAVY) == 0
