"""tracejudge's own metrics (Prometheus), named after the Collector's `otelcol_*` self-metrics. Each component
declares its metrics in a class of its own, beside its code, that takes a registry; `Telemetry.metrics` creates it
once per service, so components of one type share their metric families and label them by name."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics import parser as openmetrics_parser

__all__ = ["CONTENT_TYPE_LATEST", "Telemetry"]

M = TypeVar("M")


def count_each(counter: Counter, label_values: Iterable[tuple[str, ...]]) -> None:
    """Increments `counter` once per distinct label set, by how often it occurs: a labels() lookup per item costs
    ~2 µs, which per span was a few per cent of the receive path."""
    for values, count in collections.Counter(label_values).items():
        counter.labels(*values).inc(count)


class SpanFaultMetrics:
    """Shared by every stage that can fail on one span without failing its request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.unprocessable = Counter(
            "tracejudge_spans_unprocessable", "Spans a stage could not process (forwarded as received, left out of "
            "that stage and what follows), by stage and error type.", ["stage", "error"], registry=registry)


class Telemetry:
    """One registry per running service, so tests and several services in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._declared: dict[Callable[[CollectorRegistry], Any], Any] = {}

    def metrics(self, declaration: Callable[[CollectorRegistry], M]) -> M:
        """The metrics `declaration` (a class taking the registry) registers, created on first use."""
        if declaration not in self._declared:
            self._declared[declaration] = declaration(self.registry)
        return self._declared[declaration]  # type: ignore[no-any-return]

    def exposition(self, accept: str = "", others: Sequence[tuple[str, str]] = ()) -> tuple[bytes, str]:
        """The metrics and their content type: OpenMetrics (which carries exemplars: the trace of a low score) when
        the scraper's Accept header asks for it, as Prometheus does; the Prometheus text format otherwise. `others`
        are other processes' metrics, (process name, their OpenMetrics text): merged in, labelled `process`."""
        source: Any = _Merged(self.registry, others) if others else self.registry
        if "application/openmetrics-text" in accept:
            return openmetrics.generate_latest(source), openmetrics.CONTENT_TYPE_LATEST  # type: ignore[no-untyped-call]
        return generate_latest(source), CONTENT_TYPE_LATEST


class _Merged:
    """A registry's families with other processes' samples added to the families of the same name."""

    def __init__(self, registry: CollectorRegistry, others: Sequence[tuple[str, str]]) -> None:
        self._registry = registry
        self._others = others

    def collect(self) -> Iterator[Metric]:
        families = {family.name: family for family in self._registry.collect()}
        for process, text in self._others:
            for family in openmetrics_parser.text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
                mine = families.setdefault(family.name, Metric(family.name, family.documentation, family.type,
                                                              family.unit))
                mine.samples += [sample._replace(labels={**sample.labels, "process": process})
                                 for sample in family.samples]
        return iter(families.values())
