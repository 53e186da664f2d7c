"""The `otlp` exporter: forwards request bytes unchanged to an OTLP/gRPC endpoint, to the Export method of the
signal's service (traces, metrics or logs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from tracejudge.processor.component.errors import ConfigError, PermanentError, RetryableError
from tracejudge.processor.component.factory import EVERY_SIGNAL, Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.exporters.helper.queued import ExporterSettings, QueuedExporter, queued_exporter
from tracejudge.processor.exporters.helper.self_tracing import suppressed
from tracejudge.processor.pdata.otlp_codec import log_partial_success
from tracejudge.processor.pdata.signals import SPECS, Signal

# OTLP/gRPC: these codes are retryable; RESOURCE_EXHAUSTED only when the server sent RetryInfo.
_RETRYABLE = {
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
}


@dataclass(frozen=True, kw_only=True)
class OtlpExporterConfig(ExporterSettings):
    endpoint: str

    def validate(self, path: str) -> None:
        target, _ = split_grpc_endpoint(self.endpoint)
        if ":" not in target.rsplit("]", 1)[-1]:
            raise ConfigError(f"{path}.endpoint: {self.endpoint!r} needs a port, e.g. jaeger:4317")
        self.validate_settings(path)
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
    """The channel is opened at the first send, so a sender that is never used holds nothing open."""

    def __init__(self, config: OtlpExporterConfig, signal: Signal = "traces") -> None:
        self._config = config
        self._signal = signal
        self._method = SPECS[signal].grpc_method
        self._credentials = config.tls.grpc_credentials() if self._secure() else None  # reads files: fail early
        self._metadata = tuple(config.headers.items())
        self._endpoint = config.endpoint
        self._channel: grpc.aio.Channel | None = None

    def _secure(self) -> bool:
        _, scheme_secure = split_grpc_endpoint(self._config.endpoint)
        return scheme_secure if scheme_secure is not None else not self._config.tls.insecure

    async def encode(self, payload: bytes) -> bytes:
        return payload  # gRPC compresses by itself (compression is a channel setting)

    async def send(self, body: bytes, timeout_s: float) -> None:
        if self._channel is None:
            target, _ = split_grpc_endpoint(self._config.endpoint)
            gzip = self._config.compression == "gzip"
            compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
            self._channel = grpc.aio.secure_channel(target, self._credentials, compression=compression) \
                if self._credentials is not None else grpc.aio.insecure_channel(target, compression=compression)
        export = self._channel.unary_unary(self._method)  # bytes in, bytes out: no re-encoding
        try:
            with suppressed():
                reply = await export(body, timeout=timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise _translate(e, self._endpoint) from e
        log_partial_success(reply, self._endpoint, self._signal)

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()


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


def create(settings: CreateSettings, config: OtlpExporterConfig) -> QueuedExporter:
    return queued_exporter(settings, GrpcSender(config, cast(Signal, settings.signal)), config)


factory = Factory("otlp", "exporters", OtlpExporterConfig, create, signals=EVERY_SIGNAL)
