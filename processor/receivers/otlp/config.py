"""Configuration of the `otlp` receiver, key for key as in the Collector."""

from __future__ import annotations

from dataclasses import dataclass

from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Reference
from tracejudge.processor.pdata.signals import SIGNALS, Signal
from tracejudge.processor.transport.auth import AuthConfig
from tracejudge.processor.transport.http_site import parse_endpoint
from tracejudge.processor.transport.tls import TlsServerConfig


@dataclass(frozen=True)
class GrpcReceiverConfig:
    endpoint: str = "localhost:4317"
    max_recv_msg_size_mib: int = 4
    tls: TlsServerConfig | None = None
    auth: AuthConfig | None = None

    def validate(self, path: str) -> None:
        parse_endpoint(self.endpoint, f"{path}.endpoint")
        if self.max_recv_msg_size_mib < 1:
            raise ConfigError(f"{path}.max_recv_msg_size_mib: must be at least 1")


@dataclass(frozen=True)
class HttpReceiverConfig:
    endpoint: str = "localhost:4318"
    max_request_body_size: int = 20 * 1024 * 1024  # bytes, after decompression
    traces_url_path: str = "/v1/traces"
    metrics_url_path: str = "/v1/metrics"
    logs_url_path: str = "/v1/logs"
    tls: TlsServerConfig | None = None
    auth: AuthConfig | None = None

    def url_path(self, signal: Signal) -> str:
        path: str = getattr(self, f"{signal}_url_path")
        return path

    def validate(self, path: str) -> None:
        parse_endpoint(self.endpoint, f"{path}.endpoint")
        if self.max_request_body_size < 1:
            raise ConfigError(f"{path}.max_request_body_size: must be at least 1 (bytes)")
        paths = [self.url_path(signal) for signal in SIGNALS]
        for signal, url_path in zip(SIGNALS, paths, strict=True):
            if not url_path.startswith("/"):
                raise ConfigError(f"{path}.{signal}_url_path: must start with /")
            if paths.count(url_path) > 1:
                raise ConfigError(f"{path}.{signal}_url_path: {url_path} is the path of another signal too")


@dataclass(frozen=True)
class ProtocolsConfig:
    grpc: GrpcReceiverConfig | None = None
    http: HttpReceiverConfig | None = None


@dataclass(frozen=True)
class OtlpReceiverConfig:
    protocols: ProtocolsConfig

    def validate(self, path: str) -> None:
        if self.protocols.grpc is None and self.protocols.http is None:
            raise ConfigError(f"{path}.protocols: enable grpc, http or both (e.g. `grpc:` with no value)")
        grpc, http = self.protocols.grpc, self.protocols.http
        if grpc and http and grpc.endpoint == http.endpoint and not grpc.endpoint.endswith(":0"):
            raise ConfigError(f"{path}.protocols: grpc and http cannot share endpoint {grpc.endpoint}")

    def references(self, path: str) -> list[Reference]:
        return [settings.auth.reference(f"{path}.protocols.{transport}.auth")
                for transport, settings in (("grpc", self.protocols.grpc), ("http", self.protocols.http))
                if settings is not None and settings.auth is not None]
