"""Builds the pipelines a Config describes and runs them: start downstream-first, shut down upstream-first. The
service knows components only through their factories (service/factories.py) and what those declare."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from tracejudge.processor.component.database import Database
from tracejudge.processor.component.decisions import DecisionRecorder
from tracejudge.processor.component.errors import ConfigError, PermanentError
from tracejudge.processor.component.factory import Factory, Kind, component_type
from tracejudge.processor.component.host import AdminRoute, Component, ComponentStatus, CreateSettings, RateScale
from tracejudge.processor.component.storage import DatabaseStorage
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.consumer import Consumer, Exporter, LogContentJoin
from tracejudge.processor.pdata.signals import SIGNALS, Signal
from tracejudge.processor.service import admin_login, decision_log, factories
from tracejudge.processor.service.config import Config, MetricsTelemetryConfig
from tracejudge.processor.service.decision_log import DecisionLog, sqlite_decisions
from tracejudge.processor.service.fanout import Fanout, LogContentTap
from tracejudge.processor.service.loop_monitor import LoopMonitor
from tracejudge.processor.service.worker_pool import WorkerPool
from tracejudge.processor.transport.auth import Authenticator
from tracejudge.processor.transport.http_site import HttpSite
from tracejudge.processor.transport.status import refusal_for

log = logging.getLogger(__name__)

WORKER_NEEDS = frozenset({"storage", "database", "authenticator"})  # what a judge worker process builds


def decisions_database(config: Config, read_only: bool = False) -> Database | None:
    """The decision records' store: in `service.decisions.storage`, else in the first extension the service lists
    that keeps databases (decisions.db, or schema `decisions`); None: in memory, for as long as the process runs."""
    names = [config.service.decisions.storage] if config.service.decisions.storage else [
        name for name in config.service.extensions
        if "database" in factories.factory("extensions", component_type(name)).offers]
    if not names:
        return None
    storage: DatabaseStorage = config.extensions[names[0]]
    return storage.database("decisions", decision_log.MIGRATIONS, decision_log.WHAT, read_only)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sampling_scale = Gauge(
            "tracejudge_sampling_scale", "The share of the configured sampling rates in force (below 1 when a "
            "judge budget runs low).", registry=registry)
        self.sampling_scale.set(1)
        self.degraded = Gauge(
            "tracejudge_component_degraded", "1 while a component is degraded (a store it cannot write, say); the "
            "health check says why.", ["component"], registry=registry)


class Service:
    """Everything one config runs, and the Host its components find each other through. Components are built in
    `__init__` (so a bad TLS file fails before any port is opened) and started by `start`; `shutdown` is
    idempotent and safe without `start`.

    With `worker_process` set it is a judge worker (`tracejudge worker`): of the config it builds only what judging
    needs — the storage, database and authenticator extensions, and each traces pipeline with a judge stage (of
    `stages`, if given) from that stage on to its exporters; no receivers. Otherwise it starts the worker
    processes the judge stages ask for (`worker_processes`)."""

    def __init__(self, config: Config, worker_process: str = "", stages: Collection[str] = ()) -> None:
        self._worker_process = worker_process
        self._judge_stages = stages
        self._telemetry = Telemetry()
        # a worker's decision records go through the judge queue's outbox to the receiving process's log
        store: str | Callable[[], Database] = ":memory:" if worker_process else (
            lambda: decisions_database(config) or sqlite_decisions(":memory:"))
        self._decisions = DecisionLog(store, self._telemetry, retention=config.service.decisions.retention)
        metrics = self._telemetry.metrics(ServiceMetrics)
        self._sampling_scale = RateScale(metrics.sampling_scale.set)
        self._status = ComponentStatus(lambda component, degraded: metrics.degraded.labels(component).set(degraded))
        self._factories: dict[tuple[Kind, str], Factory] = {}
        self._built: list[tuple[Factory, Any]] = []  # every component, with the factory that made it
        self.extensions: dict[str, Any] = {}
        self.exporters: dict[tuple[Signal, str], Exporter] = {}  # one per signal an exporter is listed for
        self.processors: dict[str, Any] = {}  # traces stages by name (a processor in two pipelines: the first)
        self._stages: list[Any] = []  # every processor built, downstream first: the order they start in
        self.receivers: dict[str, Any] = {}
        for name in config.service.extensions:
            if not worker_process or factories.factory("extensions", component_type(name)).offers & WORKER_NEEDS:
                self.extensions[name] = self._create("extensions", name, config.extensions[name])
        heads: dict[str, dict[Signal, Consumer]] = {}  # receiver → the head of the pipeline it feeds, by signal
        joins: dict[str, list[LogContentJoin]] = {}  # receiver → traces stages that read content from logs
        # traces first: a logs pipeline hands its batches to the traces stages its receivers feed
        for pipeline in sorted(config.service.pipelines, key=lambda p: SIGNALS.index(_signal(p))):
            self._build_pipeline(config, pipeline, heads, joins)
        for name, consumers in heads.items():
            if not worker_process:
                self.receivers[name] = self._create("receivers", name, config.receivers[name], consumers)
        wanted = [(name, stage.worker_processes) for name, stage in self.processors.items()
                  if "worker_processes" in self._factories["processors", name].offers and stage.worker_processes]
        self._pool = WorkerPool(config.document, config.environ, wanted) if wanted and not worker_process else None
        # extensions that refer into the pipelines (the eval_service to its judge stage) start after them
        self._late = {name for name in self.extensions
                      if any(r.kind != "extensions" for r in self._factories["extensions", name].references(
                          config.extensions[name], f"extensions.{name}"))}
        self._metrics = self._admin_site(config.service.telemetry.metrics)
        self.loop_monitor = LoopMonitor(self._telemetry)
        self._stack: AsyncExitStack | None = None

    def _build_pipeline(self, config: Config, pipeline: str, heads: dict[str, dict[Signal, Consumer]],
                        joins: dict[str, list[LogContentJoin]]) -> None:
        """Exporters (once per signal), then processors from the last, each handed the one after it. A worker
        builds a traces pipeline from its judge stage on, and no other."""
        spec, signal = config.service.pipelines[pipeline], _signal(pipeline)
        processors = spec.processors
        if self._worker_process:
            judging = [i for i, name in enumerate(processors) if "worker_processes" in factories.factory(
                "processors", component_type(name)).offers and (not self._judge_stages or name in self._judge_stages)]
            if signal != "traces" or not judging:
                return
            processors = processors[judging[0]:]
        for name in spec.exporters:
            if (signal, name) not in self.exporters:
                self.exporters[signal, name] = self._create("exporters", name, config.exporters[name], signal=signal)
        head: Consumer = Fanout([self.exporters[signal, name] for name in spec.exporters])
        if signal == "logs":
            readers = list(dict.fromkeys(join for name in spec.receivers for join in joins.get(name, [])))
            for reader in readers:
                reader.attach_logs()
            if readers:
                head = LogContentTap(readers, head)
        built: list[tuple[str, Any]] = []
        for name in reversed(processors):
            head = self._create("processors", name, config.processors[name], head, signal=signal)
            if signal == "traces":
                self.processors.setdefault(name, head)
            self._stages.append(head)
            built.append((name, head))
        for name in spec.receivers:
            heads.setdefault(name, {})[signal] = head
            if signal == "traces":
                joins.setdefault(name, []).extend(
                    stage for stage_name, stage in built
                    if "log_content" in self._factories["processors", stage_name].offers)

    # -- Host --------------------------------------------------------------------------------------------------
    @property
    def telemetry(self) -> Telemetry:
        return self._telemetry

    @property
    def decisions(self) -> DecisionRecorder:
        return self._decisions

    @property
    def sampling_scale(self) -> RateScale:
        return self._sampling_scale

    @property
    def status(self) -> ComponentStatus:
        return self._status

    @property
    def worker_process(self) -> str:
        return self._worker_process

    @property
    def worker_pool(self) -> WorkerPool | None:
        return self._pool

    def find(self, kind: Kind, capability: str, name: str = "") -> Any:
        exporters = {name: exporter for (signal, name), exporter in self.exporters.items() if signal == "traces"}
        built: dict[str, Any] = {"receivers": self.receivers, "processors": self.processors,
                                 "exporters": exporters, "extensions": self.extensions}[kind]
        if not name:
            offering = [n for n in built if capability in self._factories[kind, n].offers]
            if len(offering) != 1:
                raise ConfigError(f"{len(offering)} {kind} offer {capability}: name the one to use")
            name = offering[0]
        if name not in built or capability not in self._factories[kind, name].offers:
            raise ConfigError(f"no {kind[:-1]} {name!r} offering {capability} is built yet")
        return built[name]

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def metrics_port(self) -> int | None:
        return self._metrics.port if self._metrics is not None else None

    async def start(self) -> None:
        """Extensions, then exporters, processors (last first) and receivers: nothing receives before the
        stages behind it run; extensions that refer into the pipelines last. The exit stack shuts them down in
        the opposite order."""
        stack = AsyncExitStack()
        try:
            ordered: list[Component] = [
                *(e for n, e in self.extensions.items() if n not in self._late), self._decisions,
                *self.exporters.values(), *self._stages, *self.receivers.values(),
                *(e for n, e in self.extensions.items() if n in self._late),
                *([self._pool] if self._pool is not None else []),
                self.loop_monitor]  # last: it watches serving, not start-up (the heavy judge's imports take ~1 s)
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

    def _create(self, kind: Kind, name: str, config: Any, *next_consumer: Any, signal: Signal = "traces") -> Any:
        factory = self._factories[kind, name] = factories.factory(kind, component_type(name))
        component = factory.create(CreateSettings(name, self, signal), config, *next_consumer)
        self._built.append((factory, component))
        return component

    def _offering(self, capability: str) -> Iterator[Any]:
        """Every component that offers `capability` (both copies of a processor listed in two pipelines)."""
        return (component for factory, component in self._built if capability in factory.offers)

    def _set_ready(self, ready: bool) -> None:
        for watcher in self._offering("status_watcher"):
            watcher.set_ready(ready)

    def _admin_site(self, settings: MetricsTelemetryConfig) -> HttpSite | None:
        """/metrics, and the routes components offer (`admin_routes`), behind `settings.auth` if given."""
        if not settings.address:
            return None
        auth: Authenticator | None = None
        if settings.auth is not None:
            auth = self.find("extensions", "authenticator", settings.auth.authenticator)
        telemetry, pool = self._telemetry, self._pool

        async def metrics(request: web.Request) -> web.Response:
            others = await pool.expositions() if pool is not None else []
            body, content_type = telemetry.exposition(request.headers.get("Accept", ""), others)
            response = web.Response(body=body)
            response.headers["Content-Type"] = content_type
            return response

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        routes: dict[tuple[str, str], list[AdminRoute]] = {}
        for component in [*self._offering("admin_routes"), *([self._pool] if self._pool is not None else [])]:
            for route in component.admin_routes():
                routes.setdefault((route.method, route.path), []).append(route)
        for (method, path), handlers in routes.items():
            app.router.add_route(method, path, _every_handler(handlers, auth))
        if auth is not None:
            app.add_routes(admin_login.routes(auth))
        return HttpSite(app, settings.address)


def _signal(pipeline: str) -> Signal:
    """The signal of a pipeline named `logs` or `logs/<name>` (the config was checked)."""
    return next(signal for signal in SIGNALS if signal == component_type(pipeline))


def _every_handler(routes: list[AdminRoute], auth: Authenticator | None) -> Any:
    async def handle(request: web.Request) -> web.Response:
        if auth is not None:
            try:
                auth.authenticate(admin_login.credentials(request))
            except PermanentError as error:
                if admin_login.wants_page(request):  # a browser: sign in first
                    return admin_login.to_login(request)
                refusal = refusal_for(error)
                return web.json_response({"error": refusal.message}, status=refusal.http_status)
        answers = [answer for route in routes if (answer := await route.handler(request)) is not None]
        if answers:
            return answers[0]
        message = routes[0].not_found.format(path=request.path, **request.match_info)
        return web.json_response({"error": message}, status=404)

    return handle
