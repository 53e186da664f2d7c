"""A Host for driving one component on its own: real telemetry and decision log, the extensions it is given."""

from __future__ import annotations

from typing import Any

from tracejudge.processor.component.factory import Kind
from tracejudge.processor.component.host import ComponentStatus, CreateSettings, RateScale
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.service.decision_log import DecisionLog


class ComponentHost:
    def __init__(self, extensions: dict[str, Any] | None = None, worker_process: str = "") -> None:
        self.worker_process = worker_process
        self.telemetry = Telemetry()
        self.decisions = DecisionLog(":memory:", self.telemetry)
        self.sampling_scale = RateScale()
        self.status = ComponentStatus()
        self.extensions = extensions or {}

    def find(self, kind: Kind, capability: str, name: str = "") -> Any:
        return self.extensions[name]

    def settings(self, name: str) -> CreateSettings:
        return CreateSettings(name, self)
