"""The `otlphttp` exporter: POSTs request bytes unchanged (protobuf) to an OTLP/HTTP endpoint: `endpoint` plus the
signal's path (/v1/traces, /v1/metrics, /v1/logs), or the signal's own full URL (`traces_endpoint`, ...)."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass
from typing import cast

import aiohttp

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, PermanentError, RetryableError
from tracejudge.processor.component.factory import EVERY_SIGNAL, Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.exporters.helper.queued import ExporterSettings, QueuedExporter, queued_exporter
from tracejudge.processor.exporters.helper.retry import parse_retry_after
from tracejudge.processor.exporters.helper.self_tracing import suppressed
from tracejudge.processor.pdata.otlp_codec import log_partial_success
from tracejudge.processor.pdata.signals import SIGNALS, SPECS, Signal

# OTLP/HTTP: these statuses are retryable, honouring Retry-After; every other failure is permanent.
_RETRYABLE_STATUS = {429, 502, 503, 504}


@dataclass(frozen=True, kw_only=True)
class OtlpHttpExporterConfig(ExporterSettings):
    endpoint: str = ""  # base URL; /v1/traces, /v1/metrics or /v1/logs is appended
    traces_endpoint: str = ""  # full URLs, used as they are
    metrics_endpoint: str = ""
    logs_endpoint: str = ""
    timeout: Duration = 30.0  # the Collector's otlphttp default

    def url(self, signal: Signal = "traces") -> str:
        own: str = getattr(self, f"{signal}_endpoint")
        return own or (self.endpoint.rstrip("/") + SPECS[signal].url_path if self.endpoint else "")

    def validate(self, path: str) -> None:
        if not (self.endpoint or any(self.url(signal) for signal in SIGNALS)):
            raise ConfigError(f"{path}.endpoint: required (or traces_endpoint, ...), e.g. http://phoenix:6006")
        for signal in SIGNALS:
            key = f"{signal}_endpoint" if getattr(self, f"{signal}_endpoint") else "endpoint"
            if self.url(signal) and not self.url(signal).startswith(("http://", "https://")):
                raise ConfigError(f"{path}.{key}: must start with http:// or https://")
        self.validate_settings(path)
        if self.tls.insecure:
            raise ConfigError(f"{path}.tls.insecure: not used by otlphttp; an http:// endpoint is plaintext")


class HttpSender:
    def __init__(self, config: OtlpHttpExporterConfig, signal: Signal = "traces") -> None:
        self._url = config.url(signal)
        self._signal = signal
        self._gzip = config.compression == "gzip"
        self._headers = {**config.headers, "Content-Type": "application/x-protobuf"}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._ssl = None
        if self._url.startswith("https://"):
            self._ssl = config.tls.ssl_context()
        self._session: aiohttp.ClientSession | None = None

    async def encode(self, payload: bytes) -> bytes:
        """Compressed once per request, off the event loop, not once per attempt."""
        return await asyncio.to_thread(gzip.compress, payload, 6) if self._gzip else payload

    async def send(self, body: bytes, timeout_s: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=True)
        try:
            with suppressed():
                async with self._session.post(self._url, data=body, headers=self._headers, ssl=self._ssl or True,
                                              timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                    reply = await response.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RetryableError(f"{self._url}: {type(e).__name__}: {e}") from e
        if 200 <= response.status < 300:
            if response.content_type == "application/x-protobuf":
                log_partial_success(reply, self._url, self._signal)
            return
        message = f"{self._url}: HTTP {response.status}: {reply[:200]!r}"
        if response.status in _RETRYABLE_STATUS:
            raise RetryableError(message, retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
        raise PermanentError(message)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def create(settings: CreateSettings, config: OtlpHttpExporterConfig) -> QueuedExporter:
    signal = cast(Signal, settings.signal)
    if not config.url(signal):
        raise ConfigError(f"exporters.{settings.name}: it is in a {signal} pipeline: set endpoint or "
                          f"{signal}_endpoint")
    return queued_exporter(settings, HttpSender(config, signal), config)


factory = Factory("otlphttp", "exporters", OtlpHttpExporterConfig, create, signals=EVERY_SIGNAL)
