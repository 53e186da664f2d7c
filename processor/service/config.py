"""`otel-config.yaml` → frozen `Config`, in the OpenTelemetry Collector's shape.

    receivers / processors / exporters / extensions:  {type or type/name: settings}
    service: {extensions: [...], pipelines: {traces: {receivers, processors, exporters}}, telemetry: {...}}

Every problem in the file is collected and raised together as one ConfigError, each line naming its YAML path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from tracejudge.processor.component.confmap import decode, expand_env
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.service.factories import FACTORIES, Kind
from tracejudge.processor.transport.http_site import parse_endpoint

SECTIONS: tuple[Kind, ...] = ("receivers", "processors", "exporters", "extensions")


@dataclass(frozen=True)
class PipelineConfig:
    receivers: tuple[str, ...]
    exporters: tuple[str, ...]
    processors: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricsTelemetryConfig:
    address: str = "0.0.0.0:8888"  # where /metrics is served; "" turns it off

    def validate(self, path: str) -> None:
        if self.address:
            parse_endpoint(self.address, f"{path}.address")


@dataclass(frozen=True)
class LogsTelemetryConfig:
    level: Literal["debug", "info", "warn", "error"] = "info"


@dataclass(frozen=True)
class TelemetryConfig:
    metrics: MetricsTelemetryConfig = field(default_factory=MetricsTelemetryConfig)
    logs: LogsTelemetryConfig = field(default_factory=LogsTelemetryConfig)


@dataclass(frozen=True)
class ServiceConfig:
    pipelines: dict[str, PipelineConfig]
    extensions: tuple[str, ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)


@dataclass(frozen=True)
class Config:
    receivers: Mapping[str, Any]
    processors: Mapping[str, Any]
    exporters: Mapping[str, Any]
    extensions: Mapping[str, Any]
    service: ServiceConfig

    def section(self, kind: Kind) -> Mapping[str, Any]:
        return {"receivers": self.receivers, "processors": self.processors,
                "exporters": self.exporters, "extensions": self.extensions}[kind]


def component_type(name: str) -> str:
    """`otlp/jaeger` → `otlp`."""
    return name.split("/", 1)[0]


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    return parse_config(text, os.environ if environ is None else environ)


def config_or_report(path: str) -> Config | None:
    """The config at `path`, or None after printing its problems to stderr (the command then exits 2)."""
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"{path}: invalid configuration:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def parse_config(text: str, environ: Mapping[str, str]) -> Config:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}") from e
    if not isinstance(document, dict):
        raise ConfigError("the config must be a YAML mapping with receivers, exporters and service")
    problems: list[str] = []
    document = expand_env(document, environ, "", problems)
    for key in document:
        if key not in (*SECTIONS, "service"):
            problems.append(f"{key}: unknown top-level key (known: {', '.join((*SECTIONS, 'service'))})")
    declared = {kind: {str(name) for name in document.get(kind) or {}} for kind in SECTIONS}
    sections = {kind: _decode_section(kind, document.get(kind), problems) for kind in SECTIONS}
    service = None
    if "service" in document:
        service = decode(ServiceConfig, document["service"], "service", problems)
    else:
        problems.append("service: required (it lists the pipelines to run)")
    if service is not None:
        _check_references(service, declared, sections, problems)
    if problems or service is None:
        raise ConfigError(problems)
    return Config(service=service, **sections)


def _decode_section(kind: Kind, raw: Any, problems: list[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{kind}: expected a mapping of components")
        return {}
    configs: dict[str, Any] = {}
    for name, settings in raw.items():
        name = str(name)
        factory = FACTORIES[kind].get(component_type(name))
        if factory is None:
            known = ", ".join(sorted(FACTORIES[kind])) or "none yet"
            problems.append(f"{kind}.{name}: unknown {kind[:-1]} type {component_type(name)!r} (known: {known})")
            continue
        decoded = decode(factory.config_class, settings, f"{kind}.{name}", problems)
        if decoded is not None:
            configs[name] = decoded
    return configs


def _check_references(service: ServiceConfig, declared: dict[Kind, set[str]], sections: dict[Kind, dict[str, Any]],
                      problems: list[str]) -> None:
    """Names must refer to declared components; a declared one that failed to decode was reported already."""
    if not service.pipelines:
        problems.append("service.pipelines: define at least one pipeline, e.g. traces")
    fed_by: dict[str, str] = {}
    for pipeline, spec in service.pipelines.items():
        path = f"service.pipelines.{pipeline}"
        if component_type(pipeline) != "traces":
            problems.append(f"{path}: only traces pipelines are supported (name it traces or traces/<name>)")
        for kind, names in (("receivers", spec.receivers), ("processors", spec.processors),
                            ("exporters", spec.exporters)):
            if not names and kind != "processors":
                problems.append(f"{path}.{kind}: list at least one")
            for name in {n for n in names if names.count(n) > 1}:
                problems.append(f"{path}.{kind}: {name!r} is listed more than once")
            for name in names:
                if name not in declared[kind]:  # type: ignore[index]
                    problems.append(f"{path}.{kind}: {name!r} is not defined under {kind}")
        for name in spec.receivers:
            if name in fed_by:
                problems.append(f"{path}.receivers: {name!r} already feeds pipeline {fed_by[name]}; "
                                "a receiver can feed one pipeline")
            fed_by[name] = pipeline
    for name in service.extensions:
        if name not in declared["extensions"]:
            problems.append(f"service.extensions: {name!r} is not defined under extensions")
    for kind in SECTIONS:
        for name, settings in sections[kind].items():
            for storage, where in _storages(settings, f"{kind}.{name}"):
                if storage not in service.extensions or component_type(storage) != "file_storage":
                    problems.append(f"{where}: {storage!r} must be a file_storage extension listed in "
                                    "service.extensions")
    for name, receiver in sections["receivers"].items():
        for authenticator, where in _authenticators(receiver, f"receivers.{name}"):
            if authenticator not in service.extensions:
                problems.append(f"{where}: extension {authenticator!r} must be defined and listed in "
                                "service.extensions")
            elif component_type(authenticator) != "bearertokenauth":
                problems.append(f"{where}: extension {authenticator!r} is not an authenticator")
    for name in service.extensions:
        if component_type(name) == "eval_service" and name in sections["extensions"]:
            _check_eval_service(service, sections, name, problems)


def _check_eval_service(service: ServiceConfig, sections: dict[Kind, dict[str, Any]], name: str,
                        problems: list[str]) -> None:
    """The judge stage an eval_service feeds must run, with statistics (feedback is stored with them)."""
    path, settings = f"extensions.{name}", sections["extensions"][name]
    running = {p for spec in service.pipelines.values() for p in spec.processors if component_type(p) == "judge_queue"}
    if settings.judge_queue and settings.judge_queue not in running:
        problems.append(f"{path}.judge_queue: no judge_queue processor {settings.judge_queue!r} in the pipelines")
        return
    if not settings.judge_queue and len(running) != 1:
        problems.append(f"{path}.judge_queue: name the judge_queue processor that takes feedback (the pipelines "
                        f"have {len(running)}: {', '.join(sorted(running)) or 'none'})")
        return
    stage = sections["processors"].get(settings.judge_queue or next(iter(running)))
    if stage is not None and not stage.stats.enabled:
        problems.append(f"{path}.judge_queue: feedback is stored with the statistics, which are off in that "
                        "judge_queue processor (stats.enabled)")
    if settings.auth is not None:
        authenticator = settings.auth.authenticator
        if authenticator not in service.extensions or component_type(authenticator) != "bearertokenauth":
            problems.append(f"{path}.auth.authenticator: {authenticator!r} must be a bearertokenauth extension "
                            "listed in service.extensions")


def _storages(settings: Any, path: str) -> list[tuple[str, str]]:
    found = []
    if getattr(settings, "storage", ""):
        found.append((settings.storage, f"{path}.storage"))
    queue = getattr(settings, "sending_queue", None)
    if queue is not None and queue.storage:
        found.append((queue.storage, f"{path}.sending_queue.storage"))
    return found


def _authenticators(receiver: Any, path: str) -> list[tuple[str, str]]:
    found = []
    protocols = getattr(receiver, "protocols", None)
    for transport in ("grpc", "http"):
        settings = getattr(protocols, transport, None)
        if settings is not None and settings.auth is not None:
            found.append((settings.auth.authenticator, f"{path}.protocols.{transport}.auth.authenticator"))
    return found
