"""A real Arize Phoenix server, run from its own venv as a separate process on free ports, and its span read API.

Phoenix is a user's backend, not a dependency: `make phoenix-venv` builds it and `make test` names its python in
TRACEJUDGE_PHOENIX_PYTHON. Tests take the session fixture `phoenix` (registered in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.support.process import BackendProcess

log = logging.getLogger(__name__)

PYTHON_ENV = "TRACEJUDGE_PHOENIX_PYTHON"
DEFAULT_PYTHON = Path(__file__).resolve().parents[2] / ".venv-phoenix" / "bin" / "python"
# Ports a developer's own Phoenix or collector may hold; the OS never hands these out as ephemeral ports anyway.
_RESERVED_PORTS = {4317, 4318, 6006}


def phoenix_python() -> str:
    """The Phoenix venv's python: $TRACEJUDGE_PHOENIX_PYTHON, else .venv-phoenix; skips locally, fails in CI."""
    configured = os.environ.get(PYTHON_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"{PYTHON_ENV}={configured} is not an executable python: run `make phoenix-venv`")
        return os.path.abspath(configured)  # not resolve(): the venv's python is a symlink that must stay one
    if os.access(DEFAULT_PYTHON, os.X_OK):
        return str(DEFAULT_PYTHON)
    message = f"no Phoenix server venv ({PYTHON_ENV} unset, {DEFAULT_PYTHON} missing): run `make phoenix-venv`"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message)
    pytest.skip(message)


def free_ports(count: int) -> list[int]:
    """Distinct ports free on every interface (Phoenix's gRPC server binds [::], whatever PHOENIX_HOST says)."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            s = socket.socket()
            held.append(s)
            s.bind(("", 0))
            if s.getsockname()[1] in _RESERVED_PORTS:
                held.pop().close()
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


class PhoenixServer(BackendProcess):
    """`python -m phoenix.server.main serve` with its state in `working_dir`; start() returns once /healthz is OK."""

    def __init__(self, python: str, working_dir: Path, startup_timeout_s: float = 120.0) -> None:
        super().__init__("Phoenix", working_dir / "phoenix.log", startup_timeout_s)
        self.python = python
        self.working_dir = working_dir
        self.port, self.grpc_port = free_ports(2)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"{self.base_url}/healthz"

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        return [self.python, "-m", "phoenix.server.main", "serve"], self.environment(), self.working_dir

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
        return inherited | {
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_WORKING_DIR": str(self.working_dir),
            "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{self.working_dir / 'phoenix.db'}",
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        }

    async def spans(self, project: str, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every span of `project`, newest first: GET /v1/projects/{project}/spans, following next_cursor.

        A project Phoenix has not created yet (no span routed to it) answers 404, read here as no spans.
        """
        url = f"{self.base_url}/v1/projects/{quote(project, safe='')}/spans"
        spans: list[dict[str, Any]] = []
        params = {"limit": str(page_size)}
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(url, params=params) as response:
                    if response.status == 404:
                        return []
                    response.raise_for_status()
                    page = await response.json()
                spans += page["data"]
                if not page["next_cursor"]:
                    return spans
                params["cursor"] = page["next_cursor"]

    async def wait_for_spans(self, project: str, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Polls spans(project) until it holds at least `count` spans (Phoenix inserts in the background)."""
        deadline = time.monotonic() + timeout_s
        while len(spans := await self.spans(project)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Phoenix project {project!r} has {len(spans)} of {count} spans after "
                                   f"{timeout_s}s\n{self.log_tail()}")
            await asyncio.sleep(0.2)
        return spans

    async def span_annotations(self, project: str, span_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The annotations (up to 1000) on `span_ids` (hex) in `project`: GET /v1/projects/{project}/span_annotations.

        A project Phoenix has not created yet answers 404, read here as no annotations.
        """
        url = f"{self.base_url}/v1/projects/{quote(project, safe='')}/span_annotations"
        params = [*(("span_ids", span_id) for span_id in span_ids), ("limit", "1000")]
        async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
            if response.status == 404:
                return []
            response.raise_for_status()
            page: dict[str, Any] = await response.json()
        data: list[dict[str, Any]] = page["data"]
        return data

    async def wait_for_annotations(
        self, project: str, span_ids: Sequence[str], count: int, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """Polls span_annotations until it holds at least `count` annotations."""
        deadline = time.monotonic() + timeout_s
        while len(annotations := await self.span_annotations(project, span_ids)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Phoenix project {project!r} has {len(annotations)} of {count} annotations on "
                    f"spans {list(span_ids)} after {timeout_s}s\n{self.log_tail()}"
                )
            await asyncio.sleep(0.2)
        return annotations



@pytest.fixture(scope="session", name="phoenix")
def phoenix_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """One Phoenix for the whole session; each test routes its spans to a project of its own."""
    with PhoenixServer(phoenix_python(), tmp_path_factory.mktemp("phoenix")) as server:
        yield server
