"""OTLP/HTTP receiver: protobuf and JSON, gzip, limits, and every error status the OTLP specification names."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable

import aiohttp
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.growth import growth
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, http_url, running
from tests.support.requests import export_request, span_ids
from tests.support.waiting import eventually
from tracejudge.processor.receivers.otlp.http_server import MAX_GZIP_MEMBERS, _decompress

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.read(), dict(response.headers)


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the specification writes it: hex ids, camelCase keys, integer enums."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
                span["someFutureField"] = {"ignored": True}
    return json.dumps(document).encode()


async def test_protobuf_and_gzip_are_forwarded_byte_for_byte() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        plain, zipped = export_request(spans=3).SerializeToString(), export_request(spans=2).SerializeToString()
        status, body, headers = await post(http_url(service), plain, PROTOBUF)
        assert (status, headers["Content-Type"]) == (200, "application/x-protobuf")
        assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
        status, _, _ = await post(http_url(service), gzip.compress(zipped), {**PROTOBUF, "Content-Encoding": "gzip"})
        assert status == 200
        await downstream.wait_for_requests(2)
        assert sorted(downstream.requests) == sorted([plain, zipped])


async def test_json_with_hex_ids_and_unknown_fields_is_accepted_and_answered_in_json() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        request = export_request(spans=3)
        status, body, headers = await post(http_url(service), otlp_json(request), JSON)
        assert (status, headers["Content-Type"]) == (200, "application/json")
        assert json.loads(body) == {}
        await downstream.wait_for_requests(1)
        assert ExportTraceServiceRequest.FromString(downstream.requests[0]) == request


async def test_a_request_whose_spans_are_all_rejected_is_not_forwarded() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        bad = export_request(spans=2)
        for span in bad.resource_spans[0].scope_spans[0].spans:
            span.span_id = b""
        status, body, _ = await post(http_url(service), bad.SerializeToString(), PROTOBUF)
        assert status == 200
        assert ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 2
        good = export_request(spans=1).SerializeToString()
        assert (await post(http_url(service), good, PROTOBUF))[0] == 200
        await downstream.wait_for_requests(1)
        assert downstream.requests == [good] and downstream.calls == 1


async def test_json_partial_success_reports_rejected_spans() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        request = export_request(spans=3)
        request.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x00" * 16
        status, body, _ = await post(http_url(service), otlp_json(request), JSON)
        assert status == 200
        partial = json.loads(body)["partialSuccess"]
        assert int(partial["rejectedSpans"]) == 1 and "trace_id" in partial["errorMessage"]
        await downstream.wait_for_requests(1)
        assert downstream.spans() == span_ids(request)[1:]


@pytest.mark.parametrize(
    ("body", "headers", "status", "as_json"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f garbage", PROTOBUF, 400, False),
        (b'{"resourceSpans": [', JSON, 400, True),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not-hex"}]}]}]}', JSON, 400, True),
        (b"\x1f\x8b truncated gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, False),
        (b"{}", {"Content-Type": "text/plain"}, 415, False),
        (b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON, 400, True),
    ],
    ids=["malformed-protobuf", "malformed-json", "bad-hex-id", "bad-gzip", "wrong-content-type", "nested-json"],
)
async def test_bad_requests_get_status_body_and_earlier_spans_still_arrive(
        body: bytes, headers: dict[str, str], status: int, as_json: bool) -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        good = export_request(spans=2).SerializeToString()
        assert (await post(http_url(service), good, PROTOBUF))[0] == 200
        got_status, got_body, _ = await post(http_url(service), body, headers)
        assert got_status == status
        rpc_status = json_format.Parse(got_body, status_pb2.Status()) if as_json \
            else status_pb2.Status.FromString(got_body)
        assert rpc_status.message
        await downstream.wait_for_requests(1)
        assert downstream.requests == [good]


async def test_wrong_method_is_405_and_unknown_path_404() -> None:
    async with running(forwarding_config("127.0.0.1:1")) as service, aiohttp.ClientSession() as session:
        async with session.get(http_url(service)) as response:
            assert response.status == 405
        async with session.post(http_url(service, path="/v1/metrics"), data=b"", headers=PROTOBUF) as response:
            assert response.status == 404


async def test_size_limit_applies_after_decompression() -> None:
    config = forwarding_config("127.0.0.1:1", http_extra="        max_request_body_size: 100000")
    async with running(config) as service:
        bomb = export_request(spans=2000).SerializeToString()
        assert len(bomb) > 100_000 > len(gzip.compress(bomb))
        status, body, _ = await post(http_url(service), gzip.compress(bomb), {**PROTOBUF, "Content-Encoding": "gzip"})
        assert status == 413
        assert "max_request_body_size" in status_pb2.Status.FromString(body).message
        status, _, _ = await post(http_url(service), bomb, PROTOBUF)
        assert status == 413


async def test_full_queue_is_503_with_retry_after() -> None:
    async with CaptureServer() as downstream:
        config = forwarding_config(downstream.endpoint, queue_size=1, num_consumers=1)
        async with running(config) as service:
            downstream.hold()
            first, second = export_request(spans=2), export_request(spans=2)
            assert (await post(http_url(service), first.SerializeToString(), PROTOBUF))[0] == 200
            await eventually(lambda: downstream.calls == 1)
            assert (await post(http_url(service), second.SerializeToString(), PROTOBUF))[0] == 200
            status, body, headers = await post(http_url(service), export_request().SerializeToString(), PROTOBUF)
            assert (status, headers["Retry-After"]) == (503, "1")
            info = error_details_pb2.RetryInfo()
            assert status_pb2.Status.FromString(body).details[0].Unpack(info)
            downstream.release()
            await downstream.wait_for_requests(2)
            assert downstream.spans() == span_ids(first) + span_ids(second)


async def test_bearer_token_auth_is_401() -> None:
    async with CaptureServer() as downstream:
        config = forwarding_config(
            downstream.endpoint, http_extra="        auth: {authenticator: bearertokenauth}",
            extensions="  bearertokenauth:\n    token: s3cret", service_extensions="[bearertokenauth]")
        async with running(config) as service:
            payload = export_request().SerializeToString()
            assert (await post(http_url(service), payload, PROTOBUF))[0] == 401
            assert (await post(http_url(service), payload, {**PROTOBUF, "Authorization": "Bearer no"}))[0] == 401
            # the token first: without it, not even the accepted content types are told
            assert (await post(http_url(service), payload, {"Content-Type": "text/plain"}))[0] == 401
            assert (await post(http_url(service), payload, {**PROTOBUF, "Authorization": "Bearer s3cret"}))[0] == 200
            await downstream.wait_for_requests(1)
            assert downstream.requests == [payload]


async def test_every_member_of_a_multi_member_gzip_body_is_read() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        request = export_request(spans=4)
        payload = request.SerializeToString()
        half = len(payload) // 2
        body = gzip.compress(payload[:half]) + gzip.compress(payload[half:])
        status, _, _ = await post(http_url(service), body, {**PROTOBUF, "Content-Encoding": "gzip"})
        assert status == 200
        await downstream.wait_for_requests(1)
        assert downstream.requests == [payload]
        garbage = gzip.compress(payload) + b"trailing garbage"
        status, _, _ = await post(http_url(service), garbage, {**PROTOBUF, "Content-Encoding": "gzip"})
        assert status == 400


async def test_a_body_of_many_empty_gzip_members_is_refused_without_inflating_them_all() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service:
        payload = export_request(spans=2).SerializeToString()
        many = gzip.compress(payload) + gzip.compress(b"") * MAX_GZIP_MEMBERS
        status, body, _ = await post(http_url(service), many, {**PROTOBUF, "Content-Encoding": "gzip"})
        assert status == 400
        assert f"more than {MAX_GZIP_MEMBERS} members" in status_pb2.Status.FromString(body).message
        few = gzip.compress(payload) + gzip.compress(b"") * (MAX_GZIP_MEMBERS - 1)
        assert (await post(http_url(service), few, {**PROTOBUF, "Content-Encoding": "gzip"}))[0] == 200


def test_inflating_gzip_members_is_linear_in_the_body() -> None:
    """Each member costs a copy of what follows it: bounded members keep the work linear (300,000 empty members
    took ~30 s on the event loop before)."""
    def inflate(n: int) -> Callable[[], object]:
        body = gzip.compress(b"x" * n) + gzip.compress(b"") * (MAX_GZIP_MEMBERS - 1)
        return lambda: _decompress(body, "gzip", 100 * n)

    assert growth(inflate, 200_000) < 24
