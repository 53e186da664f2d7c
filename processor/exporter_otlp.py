"""The `otlp` exporter: forwards request bytes unchanged to an OTLP/gRPC endpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .config_decode import Duration
from .errors import ConfigError, PermanentError, RetryableError
from .exporter import QueueConfig
from .retry import RetryConfig
from .self_tracing import suppressed
from .tls import TlsClientConfig

log = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

# OTLP/gRPC: these codes are retryable; RESOURCE_EXHAUSTED only when the server sent RetryInfo.
_RETRYABLE = {
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
}


@dataclass(frozen=True)
class OtlpExporterConfig:
    endpoint: str
    tls: TlsClientConfig = field(default_factory=TlsClientConfig)
    headers: dict[str, str] = field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    timeout: Duration = 5.0
    sending_queue: QueueConfig = field(default_factory=QueueConfig)
    retry_on_failure: RetryConfig = field(default_factory=RetryConfig)

    def validate(self, path: str) -> None:
        target, _ = split_grpc_endpoint(self.endpoint)
        if ":" not in target.rsplit("]", 1)[-1]:
            raise ConfigError(f"{path}.endpoint: {self.endpoint!r} needs a port, e.g. jaeger:4317")
        if self.timeout <= 0:
            raise ConfigError(f"{path}.timeout: must be positive")
        for key in self.headers:
            if key != key.lower():
                raise ConfigError(f"{path}.headers.{key}: gRPC metadata keys must be lowercase")


def split_grpc_endpoint(endpoint: str) -> tuple[str, bool | None]:
    """`host:port`, or with an http:// / https:// scheme deciding plaintext vs TLS (None: not said)."""
    for scheme, secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme):].rstrip("/"), secure
    return endpoint, None


class GrpcSender:
    def __init__(self, config: OtlpExporterConfig) -> None:
        target, scheme_secure = split_grpc_endpoint(config.endpoint)
        secure = scheme_secure if scheme_secure is not None else not config.tls.insecure
        compression = grpc.Compression.Gzip if config.compression == "gzip" else grpc.Compression.NoCompression
        if secure:
            self._channel = grpc.aio.secure_channel(target, config.tls.grpc_credentials(), compression=compression)
        else:
            self._channel = grpc.aio.insecure_channel(target, compression=compression)
        self._export = self._channel.unary_unary(EXPORT_METHOD)  # bytes in, bytes out: no re-encoding
        self._metadata = tuple(config.headers.items())
        self._endpoint = config.endpoint

    async def send(self, payload: bytes, timeout_s: float) -> None:
        try:
            with suppressed():
                reply = await self._export(payload, timeout=timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise _translate(e, self._endpoint) from e
        _log_partial_success(reply, self._endpoint)

    async def close(self) -> None:
        await self._channel.close()


def _translate(error: grpc.aio.AioRpcError, endpoint: str) -> Exception:
    code = error.code()
    message = f"{endpoint}: {code.name}: {error.details()}"
    retry_after = _retry_delay(error)
    if code in _RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is not None):
        return RetryableError(message, retry_after_s=retry_after)
    return PermanentError(message)


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                delay_s: float = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
                return delay_s
    return None


def _log_partial_success(reply: bytes, endpoint: str) -> None:
    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(reply)
    except DecodeError:
        return
    if response.partial_success.rejected_spans or response.partial_success.error_message:
        log.warning("%s rejected %d span(s): %s", endpoint, response.partial_success.rejected_spans,
                    response.partial_success.error_message)
