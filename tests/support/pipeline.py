"""Starts the real service from YAML with every endpoint on 127.0.0.1:0, and always shuts it down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from tracejudge.processor.service.config import parse_config
from tracejudge.processor.service.service import Service


@asynccontextmanager
async def running(yaml_text: str, environ: Mapping[str, str] | None = None) -> AsyncIterator[Service]:
    service = Service(parse_config(yaml_text, environ or {}))
    try:
        await service.start()
        yield service
    finally:
        await service.shutdown()


def grpc_target(service: Service, receiver: str = "otlp") -> str:
    transport = service.receivers[receiver].grpc
    assert transport is not None
    return f"127.0.0.1:{transport.port}"


def http_url(service: Service, receiver: str = "otlp", path: str = "/v1/traces") -> str:
    transport = service.receivers[receiver].http
    assert transport is not None
    return f"http://127.0.0.1:{transport.port}{path}"


def forwarding_config(downstream: str, extra_exporters: str = "", exporters: str = "[otlp]",
                      grpc_extra: str = "", http_extra: str = "", queue_size: int = 100,
                      num_consumers: int = 2, extensions: str = "", service_extensions: str = "[]",
                      timeout: str = "2s") -> str:
    """A receiver on both transports forwarding to `downstream` (host:port) with fast retries."""
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
{grpc_extra}
      http:
        endpoint: 127.0.0.1:0
{http_extra}
processors:
  llm_extract:
exporters:
  otlp:
    endpoint: {downstream}
    tls: {{insecure: true}}
    timeout: {timeout}
    sending_queue: {{queue_size: {queue_size}, num_consumers: {num_consumers}}}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 20s}}
{extra_exporters}
extensions:
{extensions or "  {}"}
service:
  extensions: {service_extensions}
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract]
      exporters: {exporters}
"""
