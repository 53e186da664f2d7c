"""What the service gives each component: a Host to find the others through, and the lifecycle every component
follows."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tracejudge.processor.component.decisions import DecisionRecorder
from tracejudge.processor.component.factory import Kind
from tracejudge.processor.component.telemetry import Telemetry

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


class Component(Protocol):
    """Lifecycle of everything the service builds. `start` returns quickly; `shutdown` is idempotent, safe
    without `start`, and drains what was accepted."""

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class StatusWatcher(Protocol):
    """Offered as `status_watcher`: told when every pipeline runs (ready) and when shutdown begins."""

    def set_ready(self, ready: bool) -> None: ...


@dataclass(frozen=True)
class AdminRoute:
    """An operator's endpoint on the service's admin site (beside /metrics), offered as `admin_routes` by a
    component's `admin_routes()`. Every component's handler for a route runs; each returns its response, or None
    when the request is not about it (no component answering is a 404)."""

    method: str
    path: str  # aiohttp route syntax, e.g. /judge/tiers/{tier}/resume
    handler: Callable[[web.Request], Awaitable[web.Response | None]]
    not_found: str = "nothing in this configuration answers {path}"  # formatted with the path's parameters


class ComponentStatus:
    """What is degraded right now, by component ("exporters/otlp": why), as the Collector's component status
    reports recoverable errors: set by a component that meets a fault it recovers from (a full disk, a backend that
    does not answer), cleared by the same component once it has passed. The health check shows it and it is gauged;
    it is logged at once, then, while the reason keeps changing (each failure says something new), at most every
    `repeat_s`."""

    def __init__(self, on_change: Callable[[str, bool], None] | None = None, repeat_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.degraded: dict[str, str] = {}
        self._on_change = on_change  # the service's gauge: (component, degraded)
        self._repeat_s = repeat_s
        self._clock = clock
        self._logged: dict[str, float] = {}  # component → when its state was last logged

    def set_degraded(self, component: str, reason: str) -> None:
        if self.degraded.get(component) == reason:
            return
        first = component not in self.degraded
        self.degraded[component] = reason
        if first or self._clock() - self._logged.get(component, 0.0) >= self._repeat_s:
            log.warning("%s is degraded: %s", component, reason)
            self._logged[component] = self._clock()
        if first and self._on_change is not None:
            self._on_change(component, True)

    def set_ok(self, component: str) -> None:
        if self.degraded.pop(component, None) is not None:
            log.warning("%s has recovered", component)
            if self._on_change is not None:
                self._on_change(component, False)


class RateScale:
    """The share of its configured rates the sampler uses, set by whoever watches the judge budget (1 = all).
    Every rate is multiplied by it, so what is sampled still nests and p stays the true inclusion probability.
    One per service: the host hands the same one to every component."""

    def __init__(self, on_change: Callable[[float], None] | None = None) -> None:
        self.value = 1.0
        self.reason = ""
        self._on_change = on_change  # the service's gauge

    def set(self, value: float, reason: str) -> None:
        self.value = min(1.0, max(0.0, value))
        self.reason = reason if self.value < 1 else ""
        if self._on_change is not None:
            self._on_change(self.value)


class Host(Protocol):
    """The running service, as a component sees it. Extensions are built first, so any other component can `find`
    an extension while it is created; an extension finds pipeline components when it starts (all are built by
    then, and a component whose references point into the pipelines is started after them)."""

    @property
    def telemetry(self) -> Telemetry: ...

    @property
    def decisions(self) -> DecisionRecorder: ...

    @property
    def sampling_scale(self) -> RateScale: ...

    @property
    def status(self) -> ComponentStatus: ...

    @property
    def worker_process(self) -> str:
        """"" in `tracejudge serve`; in a judge worker process (`tracejudge worker`), its name: components that keep
        files of their own (an exporter's disk queue) name them apart, and judge stages judge and take in nothing."""
        ...

    def find(self, kind: Kind, capability: str, name: str = "") -> Any:
        """The component `name` of `kind`, or with `name` "" the only one that offers `capability`. The config
        was checked (factory `Reference`s), so it exists and offers it; the caller knows its interface."""
        ...


@dataclass(frozen=True)
class CreateSettings:
    """What a factory's `create` gets besides the component's config."""

    name: str  # as in the config: `otlp/jaeger`
    host: Host
    signal: str = "traces"  # the pipeline type an exporter or processor is built for
