"""Serving an aiohttp application on a configured `host:port` endpoint (port 0 picks a free one)."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from aiohttp import web

from tracejudge.processor.component.errors import ConfigError


def parse_endpoint(endpoint: str, path: str) -> tuple[str, int]:
    """`host:port`, `:port` or `[v6]:port` → (host, port); "" host means all interfaces."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{path}: {endpoint!r} is not host:port (e.g. 0.0.0.0:4318 or localhost:4318)")
    return host.strip("[]"), int(port)


class HttpSite:
    """One running aiohttp application. `port` is the bound port, after `start()`."""

    def __init__(self, app: web.Application, endpoint: str, ssl_context: ssl.SSLContext | None = None,
                 **handler_args: Any) -> None:
        self._app = app
        self._host, self._port = parse_endpoint(endpoint, "endpoint")
        self._ssl = ssl_context
        self._handler_args = handler_args
        self._runner: web.AppRunner | None = None
        self.port = self._port

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host or "0.0.0.0", self._port), family=family, reuse_port=False,
                                    backlog=1024)
        self.port = sock.getsockname()[1]
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False, shutdown_timeout=5.0,
                               **self._handler_args)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=self._ssl).start()
        self._runner = runner

    async def shutdown(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
