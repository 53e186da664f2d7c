"""A real llama.cpp server (xllamacpp, Gemma 3 270M GGUF), run from its own venv as a separate process on a free
loopback port, and a recording proxy that shows what the server was asked and what it answered.

The server is opt-in: `make llama-venv` builds its venv and `make test-llama` names its python in
TRACEJUDGE_LLAMACPP_PYTHON; without that variable, tests that need it are skipped.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.process import BackendProcess, free_port

log = logging.getLogger(__name__)

PYTHON_ENV = "TRACEJUDGE_LLAMACPP_PYTHON"
LAUNCHER = Path(__file__).with_name("llamacpp_launcher.py")


def llamacpp_python() -> str:
    """The llama venv's python from $TRACEJUDGE_LLAMACPP_PYTHON; skips when it is unset (the test is opt-in)."""
    configured = os.environ.get(PYTHON_ENV)
    if not configured:
        pytest.skip(
            f"opt-in: set {PYTHON_ENV}=.venv-llama/bin/python (built by `make llama-venv`) or run `make test-llama`"
        )
    if not os.access(configured, os.X_OK):
        pytest.fail(f"{PYTHON_ENV}={configured} is not an executable python: run `make llama-venv`")
    return os.path.abspath(configured)  # not resolve(): the venv's python is a symlink that must stay one


class LlamaCppServer(BackendProcess):
    """llamacpp_launcher.py on 127.0.0.1 with its log in `working_dir`; start() returns once /health is OK (it
    answers 503 while the model loads)."""

    def __init__(self, python: str, working_dir: Path, startup_timeout_s: float = 120.0) -> None:
        super().__init__("the llama.cpp server", working_dir / "llamacpp.log", startup_timeout_s)
        self.python = python
        self.port = free_port()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client as `base_url`."""
        return f"{self.address}/v1"

    @property
    def health_url(self) -> str:
        return f"{self.address}/health"

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        return [self.python, str(LAUNCHER), "--port", str(self.port)], None, None


@dataclass(frozen=True, slots=True)
class Exchange:
    """One chat completion as it crossed the wire: the request body, the upstream status and its JSON answer."""

    request: dict[str, Any]
    status: int
    response: dict[str, Any]


class RecordingProxy:
    """Forwards `POST /v1/chat/completions` from 127.0.0.1 at a free port to `upstream` (a base_url ending in /v1),
    recording each exchange in `exchanges`: evidence of what the server itself received, not what a client meant."""

    def __init__(self, upstream: str, timeout_s: float = 300.0) -> None:
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the proxy is not running: use `async with RecordingProxy(...)` or call start()")
        return f"http://127.0.0.1:{self._port}/v1"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def shutdown(self) -> None:
        """Idempotent; safe without start()."""
        runner, self._runner = self._runner, None
        session, self._session = self._session, None
        if runner is not None:
            await runner.cleanup()
        if session is not None:
            await session.close()

    async def __aenter__(self) -> RecordingProxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    async def _forward(self, request: web.Request) -> web.Response:
        if self._session is None:
            raise web.HTTPServiceUnavailable(text="the proxy is shutting down")
        body = await request.read()
        async with self._session.post(
            f"{self.upstream}/chat/completions", data=body, headers={"Content-Type": "application/json"}
        ) as upstream:
            answer = await upstream.read()
            status = upstream.status
        try:
            response = json.loads(answer)
        except json.JSONDecodeError:
            response = {"unparsed": answer.decode(errors="replace")}
        self.exchanges.append(Exchange(json.loads(body), status, response))
        return web.Response(body=answer, status=status, content_type="application/json")
