"""`otel-config.yaml` → frozen `Config`, in the OpenTelemetry Collector's shape.

    receivers / processors / exporters / extensions:  {type or type/name: settings}
    service: {extensions: [...], pipelines: {traces|metrics|logs[/name]: {receivers, processors, exporters}},
              telemetry: {...}}

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
from tracejudge.processor.component.factory import EVERY_SIGNAL, KINDS, Kind, Reference, component_type
from tracejudge.processor.component.sqlite import Retention
from tracejudge.processor.component.storage import database_reference
from tracejudge.processor.service import factories
from tracejudge.processor.transport.auth import AuthConfig
from tracejudge.processor.transport.http_site import parse_endpoint

SECTIONS = KINDS


@dataclass(frozen=True)
class PipelineConfig:
    receivers: tuple[str, ...]
    exporters: tuple[str, ...]
    processors: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricsTelemetryConfig:
    address: str = "localhost:8888"  # where /metrics (and the admin routes) are served; "" turns it off
    # an authenticator extension the admin routes (POST /judge/tiers/{tier}/resume) require; /metrics stays open
    auth: AuthConfig | None = None

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
class DecisionsConfig:
    """Decision records (`tracejudge explain`): kept `retention.max_age`, in at most `retention.max_mib`, in
    `storage` (a file_storage or postgresql extension; default: the first of those the service lists)."""

    retention: Retention = field(default_factory=Retention)
    storage: str = ""


@dataclass(frozen=True)
class ServiceConfig:
    pipelines: dict[str, PipelineConfig]
    extensions: tuple[str, ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    decisions: DecisionsConfig = field(default_factory=DecisionsConfig)


@dataclass(frozen=True)
class Config:
    receivers: Mapping[str, Any]
    processors: Mapping[str, Any]
    exporters: Mapping[str, Any]
    extensions: Mapping[str, Any]
    service: ServiceConfig
    # the document it was decoded from and the environment it was expanded with: what judge worker processes are
    # started with, to read the same config
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    environ: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


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
    source = document
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
    return Config(service=service, document=source, environ=dict(environ), **sections)


def _decode_section(kind: Kind, raw: Any, problems: list[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{kind}: expected a mapping of components")
        return {}
    configs: dict[str, Any] = {}
    for name, settings in raw.items():
        name = str(name)
        try:
            factory = factories.factory(kind, component_type(name))
        except ConfigError as e:
            problems.append(f"{kind}.{name}: {e}")
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
    fed_by: dict[tuple[str, str], str] = {}  # (signal, receiver) → pipeline
    for pipeline, spec in service.pipelines.items():
        path = f"service.pipelines.{pipeline}"
        signal = component_type(pipeline)
        if signal not in EVERY_SIGNAL:
            problems.append(f"{path}: a pipeline is of one signal: name it traces, metrics or logs (or "
                            "<signal>/<name>)")
            continue
        listed: tuple[tuple[Kind, tuple[str, ...]], ...] = (
            ("receivers", spec.receivers), ("processors", spec.processors), ("exporters", spec.exporters))
        for kind, names in listed:
            if not names and kind != "processors":
                problems.append(f"{path}.{kind}: list at least one")
            for name in {n for n in names if names.count(n) > 1}:
                problems.append(f"{path}.{kind}: {name!r} is listed more than once")
            for name in names:
                if name not in declared[kind]:
                    problems.append(f"{path}.{kind}: {name!r} is not defined under {kind}")
                elif name in sections[kind] and signal not in (
                        factory := factories.factory(kind, component_type(name))).signals:
                    problems.append(f"{path}.{kind}: {name!r} does not take {signal} (it takes "
                                    f"{', '.join(sorted(factory.signals))}): list it in a pipeline of those")
        for name in spec.receivers:
            if (signal, name) in fed_by:
                problems.append(f"{path}.receivers: {name!r} already feeds pipeline {fed_by[signal, name]}; "
                                f"a receiver can feed one {signal} pipeline")
            fed_by[signal, name] = pipeline
        problems += stage_order_problems(path, [(name, sections["processors"][name]) for name in spec.processors
                                                if name in sections["processors"]])
    for name in service.extensions:
        if name not in declared["extensions"]:
            problems.append(f"service.extensions: {name!r} is not defined under extensions")
    running: dict[Kind, list[str]] = {
        kind: list(dict.fromkeys(n for spec in service.pipelines.values() for n in getattr(spec, kind)
                                 if n in sections[kind]))
        for kind in ("receivers", "processors", "exporters")}
    running["extensions"] = [name for name in service.extensions if name in sections["extensions"]]
    # pipeline components are checked when declared (an unused one would be refused the day it is listed);
    # extensions only when listed: a defined, unlisted extension is not started
    checked = {**{kind: list(sections[kind]) for kind in SECTIONS}, "extensions": running["extensions"]}
    service_references = [database_reference(service.decisions.storage, "service.decisions.storage")
                          ] if service.decisions.storage else []
    admin_auth = service.telemetry.metrics.auth
    if admin_auth is not None:
        service_references.append(admin_auth.reference("service.telemetry.metrics.auth"))
    for reference in service_references:
        problem = _reference_problem(reference, running, sections)
        if problem:
            problems.append(problem)
    for kind in SECTIONS:
        for name in checked[kind]:
            factory = factories.factory(kind, component_type(name))
            for reference in factory.references(sections[kind][name], f"{kind}.{name}"):
                problem = _reference_problem(reference, running, sections)
                if problem:
                    problems.append(problem)


def _reference_problem(reference: Reference, running: dict[Kind, list[str]],
                       sections: dict[Kind, dict[str, Any]]) -> str:
    """What is wrong with one reference ("" if nothing): its target must run and offer the capability."""
    kind, name, where = reference.kind, reference.name, reference.path
    running_where = "listed in service.extensions" if kind == "extensions" else "in the pipelines"
    offering = sorted(n for n in running[kind]
                      if reference.capability in factories.factory(kind, component_type(n)).offers)
    if not name:
        if len(offering) != 1:
            return (f"{where}: name the {reference.what} to use ({len(offering)} {running_where}: "
                    f"{', '.join(offering) or 'none'})")
        name = offering[0]
    if name not in offering:
        if kind == "extensions":
            return f"{where}: {name!r} must be {reference.what} {running_where}"
        return f"{where}: no {reference.what} {name!r} {running_where}"
    withheld = _offer(kind, name, reference.capability, sections)
    return f"{where}: {withheld}" if withheld else ""


def _offer(kind: Kind, name: str, capability: str, sections: dict[Kind, dict[str, Any]]) -> str:
    """"" if component `name` offers `capability`, else why not."""
    return factories.factory(kind, component_type(name)).withheld(sections[kind][name], capability)


def stage_order_problems(path: str, stages: list[tuple[str, Any]]) -> list[str]:
    """A pipeline's processors in an order that works: what a stage needs, an earlier stage adds; what it uses
    (if any stage adds it) is added earlier."""
    problems = []
    added: set[str] = set()
    factory_of = {name: factories.factory("processors", component_type(name)) for name, _ in stages}
    for position, (name, _) in enumerate(stages):
        factory = factory_of[name]
        later = {item: other for other, _ in stages[position + 1:] for item in factory_of[other].adds}
        for item in sorted(factory.needs - added):
            adder = later.get(item) or _adder(item)
            problems.append(f"{path}.processors: {name} needs {item}, which {adder} adds: list {adder} before {name}")
        for item in sorted((factory.uses - added) & set(later)):
            problems.append(f"{path}.processors: {name} uses {item}, which {later[item]} adds after it: list "
                            f"{later[item]} before {name}")
        added |= factory.adds
    return problems


def _adder(item: str) -> str:
    """The processor type that adds a batch field."""
    adders = [type_ for type_ in factories.known("processors") if item in factories.factory("processors", type_).adds]
    return adders[0] if adders else "no processor"
