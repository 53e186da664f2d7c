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
from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.verdict import Verdict
from tracejudge.processor.component.host import ComponentStatus
from tracejudge.processor.processors.judge_queue.tier_health import TierHealth

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


def test_what_a_span_lacks_is_not_a_fault_of_the_tier() -> None:
    """A faithfulness item without context is unjudged (no_context) whatever the tier: it must not mark the heavy
    tier degraded, with a local tier beside it or not."""
    status = ComponentStatus()
    health = TierHealth(status, "processors/judge_queue")
    no_context = Verdict("faithfulness", None, error_type="no_context", tier="heavy")
    local = Verdict("faithfulness", 0.4, "fail", tier="local")
    health.observe([CascadeVerdict(no_context, "no local tier", "no_context"),
                    CascadeVerdict(local, "uncertain", "no_context", local)])
    assert status.degraded == {}
    health.observe([CascadeVerdict(local, "uncertain", "timeout", local)])
    assert set(status.degraded) == {HEAVY}
