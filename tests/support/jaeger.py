"""A real Jaeger (v1.75.0, built from the Go module proxy into build/jaeger by `make jaeger`), run as a separate
process with in-memory storage on free ports, and its query API.

Jaeger is a user's backend, not a dependency: `make test` builds it and names it in TRACEJUDGE_JAEGER. Tests take the
session fixture `jaeger` (registered in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.phoenix import free_ports
from tests.support.process import BackendProcess

REPO = Path(__file__).resolve().parents[2]
BINARY_ENV = "TRACEJUDGE_JAEGER"
DEFAULT_BINARY = REPO / "build" / "jaeger"
CONFIG = REPO / "deploy" / "jaeger" / "config.yaml"


def jaeger_binary() -> str:
    """$TRACEJUDGE_JAEGER, else build/jaeger; skips locally when neither exists, fails in CI."""
    configured = os.environ.get(BINARY_ENV) or str(DEFAULT_BINARY)
    if os.access(configured, os.X_OK):
        return os.path.abspath(configured)  # it runs from a directory of its own
    message = f"no Jaeger binary at {configured}: run `make jaeger`"
    if os.environ.get("CI", "").lower() not in ("", "0", "false") or os.environ.get(BINARY_ENV):
        pytest.fail(message)
    pytest.skip(message)


class JaegerServer(BackendProcess):
    """`build/jaeger --config deploy/jaeger/config.yaml`; start() returns once its health check answers 200."""

    def __init__(self, binary: str, working_dir: Path, startup_timeout_s: float = 60.0) -> None:
        super().__init__("Jaeger", working_dir / "jaeger.log", startup_timeout_s)
        self.binary = binary
        self.working_dir = working_dir
        self.otlp_grpc_port, self.otlp_http_port, self.query_port, self.query_grpc_port, self.health_port = (
            free_ports(5))

    @property
    def otlp_endpoint(self) -> str:
        """host:port of its OTLP/gRPC receiver."""
        return f"127.0.0.1:{self.otlp_grpc_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/status"

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JAEGER_"))} | {
            "JAEGER_OTLP_GRPC_PORT": str(self.otlp_grpc_port), "JAEGER_OTLP_HTTP_PORT": str(self.otlp_http_port),
            "JAEGER_QUERY_HTTP_PORT": str(self.query_port), "JAEGER_QUERY_GRPC_PORT": str(self.query_grpc_port),
            "JAEGER_HEALTH_PORT": str(self.health_port)}
        return [self.binary, "--config", str(CONFIG)], environment, self.working_dir

    async def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as Jaeger's query API returns it (GET /api/traces/{id}: spans with tags, logs, references), or
        None while Jaeger has none of it."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.query_url}/api/traces/{trace_id}") as r:
            if r.status == 404:
                return None
            r.raise_for_status()
            data: list[dict[str, Any]] = (await r.json())["data"]
        return data[0] if data else None

    async def wait_for_trace(self, trace_id: str, spans: int, timeout_s: float = 30.0) -> dict[str, Any]:
        """Polls trace(trace_id) until it holds at least `spans` spans."""
        deadline = time.monotonic() + timeout_s
        while (found := await self.trace(trace_id)) is None or len(found["spans"]) < spans:
            if time.monotonic() > deadline:
                have = 0 if found is None else len(found["spans"])
                raise TimeoutError(f"Jaeger has {have} of {spans} spans of trace {trace_id} after {timeout_s}s\n"
                                   f"{self.log_tail()}")
            await asyncio.sleep(0.2)
        return found

    async def find_traces(self, service: str, operation: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """GET /api/traces?service=…: the traces of a service (optionally holding an operation)."""
        params = {"service": service, "limit": str(limit), "lookback": "1h"}
        if operation:
            params["operation"] = operation
        async with aiohttp.ClientSession() as session, session.get(f"{self.query_url}/api/traces",
                                                                  params=params) as r:
            r.raise_for_status()
            data: list[dict[str, Any]] = (await r.json())["data"]
        return data


@pytest.fixture(scope="session", name="jaeger")
def jaeger_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    """One Jaeger for the whole session; traces are told apart by their ids."""
    with JaegerServer(jaeger_binary(), tmp_path_factory.mktemp("jaeger")) as server:
        yield server
