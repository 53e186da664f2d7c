"""Real processes for tests: `tracejudge serve` (for tests that kill it), and users' backends (Phoenix, a
llama.cpp server) run from venvs of their own until their health URL answers 200."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

TRACEJUDGE = [sys.executable, "-m", "tracejudge.processor.cli"]  # the CLI, as a user runs it

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def tracejudge(config: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([*TRACEJUDGE, "serve", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "tracejudge is running" in line:
                break
        else:
            raise AssertionError("tracejudge did not start")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


class BackendProcess:
    """A server started by `argv` with its output in `log_path`; `start()` returns once `health_url` answers 200,
    failing the test with the log's tail if it exits or times out first. A context manager that always stops it."""

    def __init__(self, name: str, log_path: Path, startup_timeout_s: float = 120.0) -> None:
        self.name = name
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.startup_s = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        """(argv, environment or None to inherit, working directory or None)."""
        raise NotImplementedError

    @property
    def health_url(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        argv, env, cwd = self.command()
        began = time.monotonic()
        with open(self.log_path, "wb") as log_file:  # the child keeps its own descriptor
            self._process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                             stderr=subprocess.STDOUT)
        deadline = began + self.startup_timeout_s
        while not self._healthy():
            if (code := self._process.poll()) is not None:
                pytest.fail(f"{self.name} exited with code {code} before {self.health_url} answered\n"
                            f"{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: {self.health_url} not OK within {self.startup_timeout_s}s\n"
                            f"{self.log_tail()}")
            time.sleep(0.25)
        self.startup_s = time.monotonic() - began
        log.info("%s healthy after %.1fs", self.name, self.startup_s)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:
                status: int = response.status
                return status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Idempotent; terminate, then kill if it has not exited within 10 s."""
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
            return f"(no {self.name} log at {self.log_path}: {e.strerror})"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
