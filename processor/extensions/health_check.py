"""The `health_check` extension: an HTTP endpoint a load balancer or orchestrator can poll, as in the Collector."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.transport.http_site import HttpSite, parse_endpoint


@dataclass(frozen=True)
class HealthCheckConfig:
    endpoint: str = "localhost:13133"
    path: str = "/"
    # A degraded component (a store that cannot be written) is named in the body; the status stays 200 unless this
    # is set: a load balancer must not pull every instance because one disk or backend has trouble.
    fail_when_degraded: bool = False

    def validate(self, path: str) -> None:
        parse_endpoint(self.endpoint, f"{path}.endpoint")
        if not self.path.startswith("/"):
            raise ConfigError(f"{path}.path: must start with /")


class HealthCheck:
    """200 while every pipeline runs, 503 before start and once shutdown has begun: a StatusWatcher, told by the
    service through `set_ready`. Degraded components are listed in the body (`degraded`: component → why), with
    503 only under `fail_when_degraded`."""

    def __init__(self, settings: CreateSettings, config: HealthCheckConfig) -> None:
        app = web.Application()
        app.router.add_get(config.path, self._status)
        self._site = HttpSite(app, config.endpoint)
        self._ready_since: float | None = None
        self._components = settings.host.status
        self._fail_when_degraded = config.fail_when_degraded

    @property
    def port(self) -> int:
        return self._site.port

    def set_ready(self, ready: bool) -> None:
        self._ready_since = time.time() if ready else None

    async def start(self) -> None:
        await self._site.start()

    async def shutdown(self) -> None:
        self.set_ready(False)
        await self._site.shutdown()

    async def _status(self, request: web.Request) -> web.Response:
        if self._ready_since is None:
            return web.json_response({"status": "Server not available"}, status=503)
        up_since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._ready_since))
        body: dict[str, object] = {"status": "Server available", "upSince": up_since,
                                   "uptime": f"{time.time() - self._ready_since:.0f}s"}
        degraded = dict(self._components.degraded)
        if degraded:
            body |= {"status": "Server available, degraded", "degraded": degraded}
        return web.json_response(body, status=503 if degraded and self._fail_when_degraded else 200)


factory = Factory("health_check", "extensions", HealthCheckConfig, HealthCheck, offers=frozenset({"status_watcher"}))
