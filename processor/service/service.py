"""Builds the pipelines a Config describes and runs them: start downstream-first, shut down upstream-first."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web

from tracejudge.processor.component.consumer import Component, Fanout, TracesConsumer
from tracejudge.processor.component.telemetry import CONTENT_TYPE_LATEST, Telemetry
from tracejudge.processor.exporters.helper.queued import Exporter
from tracejudge.processor.extensions.eval_service import EvalService
from tracejudge.processor.extensions.file_storage import FileStorage, FileStorageConfig
from tracejudge.processor.extensions.health_check import HealthCheck
from tracejudge.processor.processors.judge_queue.stage import JudgeQueueProcessor
from tracejudge.processor.processors.sampler.sampling import RateScale
from tracejudge.processor.receivers.otlp.receiver import OtlpReceiver
from tracejudge.processor.service.config import Config, component_type
from tracejudge.processor.service.decision_log import DecisionLog
from tracejudge.processor.service.factories import FACTORIES, BuildContext
from tracejudge.processor.transport.http_site import HttpSite

log = logging.getLogger(__name__)


def decisions_path(config: Config) -> str:
    """Decision records live in the first file_storage extension the service lists (decisions.db), else in
    memory for as long as the process runs."""
    for name in config.service.extensions:
        settings = config.extensions.get(name)
        if isinstance(settings, FileStorageConfig):
            return FileStorage(settings).path_for("decisions")
    return ":memory:"


class Service:
    """Everything one config runs. Components are built in `__init__` (so a bad TLS file fails before any
    port is opened) and started by `start`; `shutdown` is idempotent and safe without `start`."""

    def __init__(self, config: Config) -> None:
        self.telemetry = Telemetry()
        self.extensions: dict[str, Any] = {}
        self.decisions = DecisionLog(decisions_path(config), self.telemetry)
        context = BuildContext(self.telemetry, self.extensions, self.decisions, RateScale())
        for name in config.service.extensions:
            factory = FACTORIES["extensions"][component_type(name)]
            self.extensions[name] = factory.create(name, config.extensions[name], context)
        self.exporters: dict[str, Exporter] = {}
        self.processors: list[Any] = []
        self.receivers: dict[str, OtlpReceiver] = {}
        self.judge_stages: dict[str, JudgeQueueProcessor] = {}
        for pipeline in config.service.pipelines.values():
            for name in pipeline.exporters:
                if name not in self.exporters:
                    factory = FACTORIES["exporters"][component_type(name)]
                    self.exporters[name] = factory.create(name, config.exporters[name], context)
            head: TracesConsumer = Fanout([self.exporters[name] for name in pipeline.exporters])
            for name in reversed(pipeline.processors):
                factory = FACTORIES["processors"][component_type(name)]
                head = factory.create(name, config.processors[name], head, context)
                self.processors.append(head)
                if isinstance(head, JudgeQueueProcessor):
                    self.judge_stages[name] = head
            for name in pipeline.receivers:
                factory = FACTORIES["receivers"][component_type(name)]
                self.receivers[name] = factory.create(name, config.receivers[name], head, context)
        # services that read what the pipelines write: bound to their stages, started after them
        self.eval_services = {name: ext for name, ext in self.extensions.items() if isinstance(ext, EvalService)}
        for service in self.eval_services.values():
            service.bind(self.judge_stages, self.extensions)
        self._metrics = self._metrics_site(config.service.telemetry.metrics.address)
        self._stack: AsyncExitStack | None = None

    @property
    def metrics_port(self) -> int | None:
        return self._metrics.port if self._metrics is not None else None

    async def start(self) -> None:
        """Extensions, then exporters, processors (last first) and receivers: nothing receives before the
        stages behind it run. The exit stack shuts them down in the opposite order."""
        stack = AsyncExitStack()
        try:
            extensions = [e for e in self.extensions.values() if not isinstance(e, EvalService)]
            ordered: list[Component] = [*extensions, self.decisions, *self.exporters.values(), *self.processors,
                                        *self.receivers.values(), *self.eval_services.values()]
            if self._metrics is not None:
                ordered.insert(0, self._metrics)
            for component in ordered:
                await component.start()
                stack.push_async_callback(component.shutdown)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._set_ready(True)

    async def delivered(self, timeout_s: float, poll_s: float = 0.2) -> int:
        """Wait until every exporter has delivered (or given up on) what it accepted; returns the requests still
        pending after `timeout_s` (0: all delivered). Shutdown alone waits only a few seconds per exporter."""
        deadline = time.monotonic() + timeout_s
        while (pending := sum(e.pending() for e in self.exporters.values())) and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
        return pending

    async def shutdown(self) -> None:
        self._set_ready(False)
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    def _set_ready(self, ready: bool) -> None:
        for extension in self.extensions.values():
            if isinstance(extension, HealthCheck):
                extension.set_ready(ready)

    def _metrics_site(self, address: str) -> HttpSite | None:
        if not address:
            return None
        telemetry = self.telemetry

        async def metrics(request: web.Request) -> web.Response:
            response = web.Response(body=telemetry.exposition())
            response.headers["Content-Type"] = CONTENT_TYPE_LATEST
            return response

        async def resume(request: web.Request) -> web.Response:
            tier = request.match_info["tier"]
            resumed = [p for p in self.processors if isinstance(p, JudgeQueueProcessor) and p.resume(tier)]
            if not resumed:
                return web.json_response({"error": f"no judge tier {tier!r} in this configuration"}, status=404)
            return web.json_response({"resumed": tier})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_post("/judge/tiers/{tier}/resume", resume)
        return HttpSite(app, address)
