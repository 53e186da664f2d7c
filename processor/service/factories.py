"""The factory map: every component type tracejudge knows, by kind, as the module that exports its `factory`.
A module is imported only when a config uses its type, so a service loads only the components it runs. Adding a
component is its own module and one line here."""

from __future__ import annotations

import importlib

from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Factory, Kind

_PACKAGE = "tracejudge.processor"

MODULES: dict[Kind, dict[str, str]] = {
    "receivers": {
        "otlp": "receivers.otlp",
    },
    "processors": {
        "memory_limiter": "processors.memory_limiter",
        "llm_extract": "processors.llm_extract",
        "llm_checks": "processors.llm_checks",
        "sampler": "processors.sampler",
        "judge_queue": "processors.judge_queue",
    },
    "exporters": {
        "otlp": "exporters.otlp",
        "otlphttp": "exporters.otlphttp",
        "phoenix": "exporters.phoenix",
        "debug": "exporters.debug",
    },
    "extensions": {
        "health_check": "extensions.health_check",
        "bearertokenauth": "extensions.bearertokenauth",
        "file_storage": "extensions.file_storage",
        "postgresql": "extensions.postgresql",
        "eval_service": "extensions.eval_service",
    },
}


def known(kind: Kind) -> list[str]:
    return sorted(MODULES[kind])


def factory(kind: Kind, type_: str) -> Factory:
    """The factory of a component type; ConfigError naming the known types if there is none."""
    module = MODULES[kind].get(type_)
    if module is None:
        raise ConfigError(f"unknown {kind[:-1]} type {type_!r} (known: {', '.join(known(kind))})")
    found: Factory = importlib.import_module(f"{_PACKAGE}.{module}").factory
    if found.type != type_ or found.kind != kind:  # a wrong line in MODULES, caught by the tests
        raise RuntimeError(f"{module} exports the factory of {found.kind} {found.type!r}, not {kind} {type_!r}")
    return found
