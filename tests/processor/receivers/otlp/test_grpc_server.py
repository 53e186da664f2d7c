"""OTLP/gRPC receiver: status codes per the OTLP specification, and forwarding that loses nothing accepted."""

from __future__ import annotations

import gzip

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, grpc_target, running
from tests.support.requests import export_request, span_ids
from tests.support.waiting import eventually

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def export(target: str, payload: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        reply: bytes = await channel.unary_unary(EXPORT)(payload, timeout=10, metadata=metadata)
        return reply


def retry_delay_s(error: grpc.aio.AioRpcError) -> float | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


async def test_forwards_request_bytes_unchanged() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        payloads = [export_request(spans=5).SerializeToString(),
                    export_request(spans=3, llm_every=2).SerializeToString()]
        for payload in payloads:
            reply = ExportTraceServiceResponse.FromString(await export(grpc_target(service), payload))
            assert not reply.HasField("partial_success")
        await downstream.wait_for_requests(2)
        assert sorted(downstream.requests) == sorted(payloads)


async def test_malformed_protobuf_is_invalid_argument_and_earlier_spans_still_arrive() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        good = export_request(spans=4).SerializeToString()
        await export(grpc_target(service), good)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await export(grpc_target(service), b"\x0a\xff\xff\xff\xff\x0f garbage")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await downstream.wait_for_requests(1)
        assert downstream.requests == [good]


async def test_oversized_request_is_resource_exhausted() -> None:
    config = forwarding_config("127.0.0.1:1", grpc_extra="        max_recv_msg_size_mib: 1")
    async with running(config) as service:
        big = export_request(spans=3000, attributes_per_span=20).SerializeToString()
        assert len(big) > 1024 * 1024
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await export(grpc_target(service), big)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_invalid_span_ids_are_rejected_per_span_with_partial_success() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        request = export_request(spans=4)
        spans = request.resource_spans[0].scope_spans[0].spans
        spans[1].span_id = b"\x00" * 8
        spans[2].trace_id = b"\x01\x02"
        reply = ExportTraceServiceResponse.FromString(await export(grpc_target(service),
                                                                   request.SerializeToString()))
        assert reply.partial_success.rejected_spans == 2
        assert "trace_id" in reply.partial_success.error_message
        await downstream.wait_for_requests(1)
        assert downstream.spans() == [spans[0].span_id, spans[3].span_id]


async def test_full_sending_queue_refuses_with_unavailable_and_retry_info() -> None:
    async with CaptureServer() as downstream:
        config = forwarding_config(downstream.endpoint, queue_size=1, num_consumers=1)
        async with running(config) as service:
            downstream.hold()  # the one consumer blocks on its first request; the queue then holds one more
            first, second = export_request(spans=2), export_request(spans=2)
            await export(grpc_target(service), first.SerializeToString())
            await eventually(lambda: downstream.calls == 1)
            await export(grpc_target(service), second.SerializeToString())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await export(grpc_target(service), export_request(spans=2).SerializeToString())
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert retry_delay_s(refused.value) == pytest.approx(1.0)
            downstream.release()
            await downstream.wait_for_requests(2)
            assert downstream.spans() == span_ids(first) + span_ids(second)


async def test_bearer_token_auth() -> None:
    async with CaptureServer() as downstream:
        config = forwarding_config(
            downstream.endpoint, grpc_extra="        auth: {authenticator: bearertokenauth}",
            extensions="  bearertokenauth:\n    token: ${env:TOKEN}", service_extensions="[bearertokenauth]")
        async with running(config, {"TOKEN": "s3cret"}) as service:
            payload = export_request(spans=2).SerializeToString()
            for metadata in ((), (("authorization", "Bearer wrong"),)):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await export(grpc_target(service), payload, metadata)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            await export(grpc_target(service), payload, (("authorization", "Bearer s3cret"),))
            await downstream.wait_for_requests(1)
            assert downstream.requests == [payload]


async def test_gzip_requests_are_accepted_and_the_limit_applies_after_decompression() -> None:
    async with CaptureServer() as downstream:
        config = forwarding_config(downstream.endpoint, grpc_extra="        max_recv_msg_size_mib: 1")
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            call = channel.unary_unary(EXPORT)
            small = export_request(spans=10).SerializeToString()
            await call(small, timeout=10, compression=grpc.Compression.Gzip)
            bomb = export_request(spans=3000, attributes_per_span=20).SerializeToString()
            assert len(gzip.compress(bomb)) < 1024 * 1024 < len(bomb)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(bomb, timeout=10, compression=grpc.Compression.Gzip)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await downstream.wait_for_requests(1)
            assert downstream.requests == [small]
