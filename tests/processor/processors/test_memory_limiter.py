"""The `memory_limiter` processor: above its soft limit (of this process's real resident memory) data is refused
with the retryable status, and accepted again once usage is back under it."""

from __future__ import annotations

import aiohttp
import grpc
import pytest

from tests.support.host import ComponentHost
from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, grpc_target, http_url, running
from tests.support.requests import export_request
from tracejudge.processor.component.errors import ConfigError, RetryableError
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.memory_limiter import (
    MIB,
    MemoryLimiterConfig,
    MemoryLimiterProcessor,
    resident_bytes,
)
from tracejudge.processor.service.config import parse_config

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def limited(downstream: str, limit_mib: int, spike_mib: int) -> str:
    return forwarding_config(downstream).replace("      processors: [llm_extract]",
                                                 "      processors: [memory_limiter, llm_extract]").replace(
        "  llm_extract:\n", f"  memory_limiter: {{check_interval: 50ms, limit_mib: {limit_mib}, "
                            f"spike_limit_mib: {spike_mib}}}\n  llm_extract:\n")


async def test_above_the_soft_limit_requests_are_refused_as_retryable_and_nothing_is_forwarded() -> None:
    used_mib = resident_bytes() // MIB
    assert used_mib > 40  # this test process: python, grpc, protobuf, aiohttp
    request = export_request(spans=3).SerializeToString()
    async with CaptureServer() as downstream, running(limited(downstream.endpoint, used_mib // 2 + 10, 10)) as service:
        async with grpc.aio.insecure_channel(grpc_target(service)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(EXPORT)(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "soft limit" in (refused.value.details() or "")
        async with aiohttp.ClientSession() as session, session.post(
                http_url(service), data=request, headers={"Content-Type": "application/x-protobuf"}) as response:
            assert (response.status, response.headers.get("Retry-After")) == (503, "1")
        assert metric(service, "tracejudge_memory_limiter_refused_spans_total", processor="memory_limiter") == 6
        assert metric(service, "tracejudge_memory_limiter_usage_bytes", processor="memory_limiter") > used_mib // 2
    assert downstream.requests == []


async def test_under_the_soft_limit_everything_passes() -> None:
    request = export_request(spans=3).SerializeToString()
    async with CaptureServer() as downstream, running(limited(downstream.endpoint, 64 * 1024, 1024)) as service, \
            grpc.aio.insecure_channel(grpc_target(service)) as channel:
        await channel.unary_unary(EXPORT)(request, timeout=10)
        await downstream.wait_for_requests(1)
        assert downstream.requests == [request]


def test_limits_in_mib_or_percent_with_a_default_spike_of_a_fifth() -> None:
    assert MemoryLimiterConfig(limit_mib=500).limits_bytes(8000 * MIB) == (400 * MIB, 500 * MIB)
    assert MemoryLimiterConfig(limit_mib=500, spike_limit_mib=50).limits_bytes(0) == (450 * MIB, 500 * MIB)
    assert MemoryLimiterConfig(limit_percentage=50, spike_limit_percentage=10).limits_bytes(1000 * MIB) == (
        400 * MIB, 500 * MIB)


@pytest.mark.parametrize(("settings", "problem"), [
    ("{}", "processors.memory_limiter: set one of limit_mib or limit_percentage"),
    ("{limit_mib: 100, limit_percentage: 50}", "processors.memory_limiter: set one of limit_mib or limit_percentage"),
    ("{limit_mib: 100, spike_limit_mib: 100}", "processors.memory_limiter.spike_limit_mib: must be below limit_mib"),
    ("{limit_mib: 100, check_interval: 0s}", "processors.memory_limiter.check_interval: must be positive"),
])
def test_bad_settings_are_named(settings: str, problem: str) -> None:
    text = limited("127.0.0.1:1", 100, 10).replace(
        "  memory_limiter: {check_interval: 50ms, limit_mib: 100, spike_limit_mib: 10}",
        f"  memory_limiter: {settings}")
    with pytest.raises(ConfigError) as error:
        parse_config(text, {})
    assert any(problem in p for p in error.value.problems), error.value.problems


async def test_data_is_accepted_again_once_usage_is_back_under_the_soft_limit() -> None:
    readings = iter([450 * MIB, 450 * MIB, 300 * MIB])  # above (before and after freeing), then back under

    class Sink:
        def __init__(self) -> None:
            self.batches: list[TraceBatch] = []

        async def consume(self, batch: TraceBatch) -> None:
            self.batches.append(batch)

    sink = Sink()
    limiter = MemoryLimiterProcessor(ComponentHost().settings("memory_limiter"), MemoryLimiterConfig(limit_mib=500),
                                     sink, usage=lambda: next(readings), total=lambda: 0)
    request = export_request(spans=2)
    batch = TraceBatch(request.SerializeToString(), request, 2)
    limiter.check()
    with pytest.raises(RetryableError):
        await limiter.consume(batch)
    limiter.check()
    await limiter.consume(batch)
    assert sink.batches == [batch]
