"""The `otlphttp` exporter: POSTs request bytes unchanged (protobuf) to an OTLP/HTTP endpoint."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass

import aiohttp

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, PermanentError, RetryableError
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.exporters.helper.queued import ExporterSettings, QueuedExporter, queued_exporter
from tracejudge.processor.exporters.helper.retry import parse_retry_after
from tracejudge.processor.exporters.helper.self_tracing import suppressed
from tracejudge.processor.pdata.otlp_codec import log_partial_success

# OTLP/HTTP: these statuses are retryable, honouring Retry-After; every other failure is permanent.
_RETRYABLE_STATUS = {429, 502, 503, 504}


@dataclass(frozen=True, kw_only=True)
class OtlpHttpExporterConfig(ExporterSettings):
    endpoint: str = ""  # base URL; /v1/traces is appended
    traces_endpoint: str = ""  # full URL, used as is
    timeout: Duration = 30.0  # the Collector's otlphttp default

    @property
    def url(self) -> str:
        return self.traces_endpoint or self.endpoint.rstrip("/") + "/v1/traces"

    def validate(self, path: str) -> None:
        if not (self.endpoint or self.traces_endpoint):
            raise ConfigError(f"{path}.endpoint: required (or traces_endpoint), e.g. http://phoenix:6006")
        key = "traces_endpoint" if self.traces_endpoint else "endpoint"
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.{key}: must start with http:// or https://")
        self.validate_settings(path)
        if self.tls.insecure:
            raise ConfigError(f"{path}.tls.insecure: not used by otlphttp; an http:// endpoint is plaintext")


class HttpSender:
    def __init__(self, config: OtlpHttpExporterConfig) -> None:
        self._url = config.url
        self._gzip = config.compression == "gzip"
        self._headers = {**config.headers, "Content-Type": "application/x-protobuf"}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._ssl = None
        if config.url.startswith("https://"):
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
                log_partial_success(reply, self._url)
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
    return queued_exporter(settings, HttpSender(config), config)


factory = Factory("otlphttp", "exporters", OtlpHttpExporterConfig, create)
