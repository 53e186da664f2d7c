"""Exporters: retries that honour the downstream, queues that survive an outage, no exporter blocking another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from aiohttp import web

from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, grpc_target, running
from tests.support.process import free_port
from tests.support.requests import export_request
from tests.support.waiting import eventually
from tracejudge.processor.service.config import parse_config
from tracejudge.processor.service.service import Service

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def send(service: Service, payload: bytes) -> None:
    async with grpc.aio.insecure_channel(grpc_target(service)) as channel:
        await channel.unary_unary(EXPORT)(payload, timeout=10)


async def test_spans_queued_while_downstream_is_down_arrive_when_it_comes_back() -> None:
    port = free_port()
    async with running(forwarding_config(f"127.0.0.1:{port}")) as service:
        payloads = [export_request(spans=2).SerializeToString() for _ in range(3)]
        for payload in payloads:
            await send(service, payload)  # acknowledged: the spans are in the sending queue
        async with CaptureServer(port) as downstream:
            await downstream.wait_for_requests(3)
            assert sorted(downstream.requests) == sorted(payloads)


async def test_a_stuck_exporter_does_not_hold_up_another() -> None:
    async with CaptureServer() as stuck, CaptureServer() as healthy:
        second = f"""
  otlp/second:
    endpoint: {healthy.endpoint}
    tls: {{insecure: true}}"""
        config = forwarding_config(stuck.endpoint, extra_exporters=second, exporters="[otlp, otlp/second]")
        stuck.hold()
        async with running(config) as service:
            payload = export_request(spans=2).SerializeToString()
            await send(service, payload)
            await healthy.wait_for_requests(1)
            assert healthy.requests == [payload] and stuck.requests == []
            stuck.release()
            await stuck.wait_for_requests(1)


async def test_a_downstream_slower_than_the_timeout_is_retried() -> None:
    async with CaptureServer() as downstream, \
            running(forwarding_config(downstream.endpoint, timeout="200ms")) as service:
        downstream.hold()
        payload = export_request(spans=2).SerializeToString()
        await send(service, payload)
        await eventually(lambda: downstream.calls >= 2, what="a second attempt after the first timed out")
        downstream.release()
        await downstream.wait_for_requests(1)
        assert downstream.requests[0] == payload


async def test_retry_info_is_honoured_and_the_request_is_delivered_once() -> None:
    async with CaptureServer() as downstream:
        downstream.fail_next(grpc.StatusCode.UNAVAILABLE, retry_after_s=0.2)
        downstream.fail_next(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after_s=0.1)  # retryable: it has RetryInfo
        async with running(forwarding_config(downstream.endpoint)) as service:
            payload = export_request(spans=2).SerializeToString()
            await send(service, payload)
            await downstream.wait_for_requests(1)
            assert downstream.requests == [payload] and downstream.calls == 3


async def test_permanent_downstream_error_is_counted_not_retried() -> None:
    async with CaptureServer() as downstream:
        downstream.fail_next(grpc.StatusCode.INVALID_ARGUMENT)
        async with running(forwarding_config(downstream.endpoint)) as service:
            await send(service, export_request(spans=3).SerializeToString())
            await eventually(lambda: metric(service, "tracejudge_exporter_send_failed_spans_total",
                                            exporter="otlp") == 3)
            assert downstream.calls == 1


@asynccontextmanager
async def http_downstream(statuses: list[int]) -> AsyncIterator[tuple[int, list[web.Request], list[bytes]]]:
    """An OTLP/HTTP endpoint answering the scripted statuses first (503s with Retry-After), then 200."""
    requests: list[web.Request] = []
    bodies: list[bytes] = []

    async def traces(request: web.Request) -> web.Response:
        requests.append(request)
        if statuses:
            return web.Response(status=statuses.pop(0), headers={"Retry-After": "0"})
        bodies.append(await request.read())  # aiohttp has undone the Content-Encoding
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port, requests, bodies
    finally:
        await runner.cleanup()


async def test_otlphttp_exporter_posts_gzip_protobuf_and_retries_503() -> None:
    async with http_downstream([503, 429]) as (port, requests, bodies):
        exporter = f"""
  otlphttp/phoenix:
    endpoint: http://127.0.0.1:{port}
    headers: {{x-api-key: k}}
    retry_on_failure: {{initial_interval: 50ms}}"""
        config = forwarding_config("127.0.0.1:1", extra_exporters=exporter, exporters="[otlphttp/phoenix]")
        async with running(config) as service:
            payload = export_request(spans=2).SerializeToString()
            await send(service, payload)
            await eventually(lambda: len(bodies) == 1)
            assert bodies == [payload] and len(requests) == 3
            assert requests[-1].headers["Content-Encoding"] == "gzip"
            assert requests[-1].headers["Content-Type"] == "application/x-protobuf"
            assert requests[-1].headers["x-api-key"] == "k"


@pytest.mark.parametrize(("settings", "capacity"), [
    ("{}", (64 * 1024 * 1024, "bytes")),  # bounded memory whatever the request sizes
    ("{queue_size: 50}", (50, "requests")),  # the Collector's meaning of queue_size alone
    ("{sizer: items}", (100_000, "items")),
    ("{sizer: bytes, queue_size: 1000000}", (1_000_000, "bytes")),
])
async def test_a_sending_queue_is_bounded_in_bytes_unless_told_otherwise(settings: str,
                                                                         capacity: tuple[int, str]) -> None:
    text = forwarding_config("127.0.0.1:1").replace("sending_queue: {queue_size: 100, num_consumers: 2}",
                                                    f"sending_queue: {settings}")
    queue = parse_config(text, {}).exporters["otlp"].sending_queue
    assert (queue.capacity, queue.unit) == capacity
    async with running(text) as service:
        assert metric(service, "tracejudge_exporter_queue_capacity", exporter="otlp", data_type="traces") == capacity[0]
