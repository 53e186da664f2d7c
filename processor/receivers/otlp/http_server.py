"""OTLP/HTTP transport: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` (those with a pipeline; the paths are
configurable), protobuf or JSON, optionally gzip-compressed, on aiohttp."""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Mapping

from aiohttp import web
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from tracejudge.processor.component.errors import PermanentError
from tracejudge.processor.pdata.otlp_codec import decode_json, decode_protobuf, encode_response, encode_status
from tracejudge.processor.pdata.signals import Signal
from tracejudge.processor.receivers.otlp.config import HttpReceiverConfig
from tracejudge.processor.receivers.otlp.intake import Intake
from tracejudge.processor.transport.auth import Authenticator
from tracejudge.processor.transport.http_site import HttpSite
from tracejudge.processor.transport.status import refusal_for, retry_after_s

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_READ_CHUNK = 64 * 1024
# Compressed bodies above this are inflated in a worker thread: one big body does not hold up other clients.
OFFLOAD_COMPRESSED_BYTES = 64 * 1024
MAX_GZIP_MEMBERS = 64


class HttpTransport:
    def __init__(self, name: str, config: HttpReceiverConfig, intakes: Mapping[Signal, Intake],
                 authenticator: Authenticator | None) -> None:
        self._name = name
        self._config = config
        self._auth = authenticator
        app = web.Application()
        for signal, intake in intakes.items():
            app.router.add_post(config.url_path(signal), functools.partial(self._export, intake))
        ssl_context = config.tls.ssl_context() if config.tls is not None else None
        # We decompress ourselves, so the size limit applies to the decompressed body.
        self._site = HttpSite(app, config.endpoint, ssl_context, auto_decompress=False)

    @property
    def port(self) -> int:
        return self._site.port

    async def start(self) -> None:
        await self._site.start()

    async def shutdown(self) -> None:
        await self._site.shutdown()

    async def _export(self, intake: Intake, request: web.Request) -> web.Response:
        as_json = request.content_type == JSON
        try:
            if self._auth is not None:  # first: an unauthenticated client learns nothing about what we accept
                self._auth.authenticate(request.headers.get("Authorization"))
            if request.content_type not in (PROTOBUF, JSON):
                raise PermanentError(f"unsupported Content-Type {request.content_type!r}: send {PROTOBUF} or "
                                     f"{JSON}", kind="unsupported_media_type")
            body = await self._read_body(request)
        except PermanentError as error:
            intake.refuse("http", error.kind)
            return _error_response(error, as_json)
        decode = decode_json if as_json else decode_protobuf
        signal = intake.signal
        try:
            decoded = await intake.accept("http", lambda: decode(body, self._name, signal), len(body), as_json)
        except Exception as error:  # every refusal, including our own bugs, becomes a status code
            return _error_response(error, as_json)
        return web.Response(body=encode_response(decoded, as_json, signal), content_type=request.content_type)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._config.max_request_body_size
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "deflate"):
            raise PermanentError(f"unsupported Content-Encoding {encoding!r}: use gzip or none")
        # A compressed body is at most slightly larger than what it holds.
        raw_limit = limit if encoding == "identity" else limit + limit // 100 + 1024
        if request.content_length is not None and request.content_length > raw_limit:
            raise _too_large(limit)
        raw = bytearray()
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            raw += chunk
            if len(raw) > raw_limit:
                raise _too_large(limit)
        if encoding == "identity":
            return bytes(raw)
        if len(raw) <= OFFLOAD_COMPRESSED_BYTES:
            return _decompress(bytes(raw), encoding, limit)
        return await asyncio.to_thread(_decompress, bytes(raw), encoding, limit)


def _decompress(raw: bytes, encoding: str, limit: int) -> bytes:
    """Every member of a gzip body (RFC 1952 allows several; at most MAX_GZIP_MEMBERS, as each costs a copy of what
    follows it), never more than `limit` bytes in all."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    body = bytearray()
    rest = raw
    for _ in range(MAX_GZIP_MEMBERS):
        decompressor = zlib.decompressobj(wbits)
        try:
            body += decompressor.decompress(rest, limit + 1 - len(body))
        except zlib.error as e:
            raise PermanentError(f"body is not valid {encoding} data: {e}") from e
        if len(body) > limit or decompressor.unconsumed_tail:
            raise _too_large(limit)
        if not decompressor.eof:
            raise PermanentError(f"{encoding} body is truncated")
        rest = decompressor.unused_data
        if not rest:
            return bytes(body)
        if encoding != "gzip":
            raise PermanentError(f"unexpected data after the end of the {encoding} body")
    raise PermanentError(f"gzip body of more than {MAX_GZIP_MEMBERS} members: send one (OTLP clients do)")


def _too_large(limit: int) -> PermanentError:
    return PermanentError(f"request body exceeds max_request_body_size ({limit} bytes after decompression)",
                          kind="too_large")


def _error_response(error: Exception, as_json: bool) -> web.Response:
    refusal = refusal_for(error)
    headers = {}
    details = []
    if (seconds := retry_after_s(refusal)) is not None:
        headers["Retry-After"] = str(seconds)
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds)))
    body = encode_status(refusal.rpc_code, refusal.message, as_json, details)
    return web.Response(status=refusal.http_status, body=body, headers=headers,
                        content_type=JSON if as_json else PROTOBUF)
