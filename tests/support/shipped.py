"""The shipped otel-config.yaml as tests and benchmarks run it: every listener put on loopback through its
environment variables, and an exporter added beside `debug` when the run needs a backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "otel-config.yaml"
LISTENERS = ("grpc", "http", "eval_grpc", "eval_http", "health", "metrics")


def environment(ports: Mapping[str, int] | None = None) -> dict[str, str]:
    """The TRACEJUDGE_* variables putting each of the shipped config's LISTENERS on 127.0.0.1: on `ports[name]`,
    or on port 0 (any free port, for a service run in this process)."""
    def at(name: str) -> str:
        return f"127.0.0.1:{ports[name] if ports else 0}"

    return {**{f"TRACEJUDGE_{name.upper()}_ENDPOINT": at(name) for name in LISTENERS if name != "metrics"},
            "TRACEJUDGE_METRICS_ADDRESS": at("metrics")}


def with_exporter(name: str, settings: str, signals: tuple[str, ...] = ("traces",)) -> str:
    """The shipped config's text with exporter `name` added to the pipelines of `signals`; `settings` is its YAML
    body, each line indented by four spaces."""
    text, marker, pipelines = SHIPPED.read_text().partition("\n  pipelines:\n")
    exporters = "exporters:\n  debug:\n    verbosity: normal\n"
    changed = "otel-config.yaml changed shape: update tests/support/shipped.py"
    assert marker and exporters in text, changed
    for signal in signals:
        head, found, tail = pipelines.partition(f"    {signal}:\n")
        pipeline = "      exporters: [debug]"
        assert found and pipeline in tail, changed
        pipelines = head + found + tail.replace(pipeline, f"      exporters: [debug, {name}]", 1)
    return text.replace(exporters, f"{exporters}  {name}:\n{settings}") + marker + pipelines
