"""A real llama.cpp server (xllamacpp, Gemma 3 270M GGUF), run from its own venv as a separate process on a free
loopback port, and a recording proxy that shows what the server was asked and what it answered.

The server is opt-in: `make llama-venv` builds its venv and `make test-llama` names its python in
TRACEJUDGE_LLAMACPP_PYTHON; without that variable, tests that need it are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.process import free_port

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


class LlamaCppServer:
    """llamacpp_launcher.py on 127.0.0.1 with its log in `working_dir`; start() returns once /health is OK."""

    def __init__(self, python: str, working_dir: Path, startup_timeout_s: float = 120.0) -> None:
        self.python = python
        self.log_path = working_dir / "llamacpp.log"
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self.startup_s = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client as `base_url`."""
        return f"{self.address}/v1"

    def start(self) -> None:
        began = time.monotonic()
        with open(self.log_path, "wb") as log_file:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                [self.python, str(LAUNCHER), "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = began + self.startup_timeout_s
        while not self._healthy():  # 503 while the model loads, 200 once it can serve
            if (code := self._process.poll()) is not None:
                pytest.fail(f"the llama.cpp server exited with code {code} before /health was OK\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp /health not OK within {self.startup_timeout_s}s\n{self.log_tail()}")
            time.sleep(0.25)
        self.startup_s = time.monotonic() - began
        log.info("llama.cpp server %s healthy after %.1fs", self.address, self.startup_s)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/health", timeout=1) as response:
                status: int = response.status
                return status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Idempotent; terminate, then kill if the server has not exited within 10 s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no llama.cpp server log at {self.log_path}: {e.strerror})"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LlamaCppServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


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
