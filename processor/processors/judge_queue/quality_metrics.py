"""Quality as Prometheus series, per (service, prompt_version, model, metric): the score distribution, verdicts by
outcome (pass rate = pass / (pass + fail)), escalations, spend and alerts, with OpenMetrics exemplars that carry the
trace of a recent low score, so a dashboard can alert on quality and open the trace.

Counted where a verdict is recorded — the worker completing its item, in the transaction that writes its decision
record — so each verdict is counted once, by the process that judged it; with several worker processes or
instances each exposes its own counts and Prometheus sums them (`sum by (service, prompt_version, model, metric)`).
Cardinality is bounded: the first `max_series` series keep their labels, the rest are counted under `_other`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.stats.records import Alert

SERIES = ["service", "prompt_version", "model", "metric"]
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
OTHER = "_other"
LOW_SCORE = 0.5  # below it, an observation carries its trace as an exemplar


class QualityMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.score = Histogram(
            "tracejudge_quality_score", "Judge scores (1 = good); exemplars on the low buckets carry the trace of a "
            "recent low score.", SERIES, buckets=SCORE_BUCKETS, registry=registry)
        self.verdicts = Counter(
            "tracejudge_quality_verdicts", "Final verdicts by outcome: pass, fail, or unjudged (no score).",
            [*SERIES, "outcome"], registry=registry)
        self.escalations = Counter(
            "tracejudge_quality_escalations", "Verdicts the heavy tier was asked for.", SERIES, registry=registry)
        self.cost_usd = Counter(
            "tracejudge_quality_cost_usd", "What judging cost, in US dollars.", SERIES, registry=registry)
        self.alerts = Counter(
            "tracejudge_quality_alerts", "Alerts raised, by cause.", [*SERIES, "cause"], registry=registry)
        self.series = Gauge(
            "tracejudge_quality_series", "Series with labels of their own (at most judge_queue.max_quality_series; "
            "the rest are counted under _other).", registry=registry)


class QualitySeries:
    def __init__(self, metrics: QualityMetrics, max_series: int) -> None:
        self._metrics = metrics
        self._max_series = max_series
        self._known: set[tuple[str, str, str]] = set()

    def _labels(self, service: str, prompt_version: str, model: str, metric: str) -> tuple[str, str, str, str]:
        key = (service, prompt_version, model)
        if key not in self._known:
            if len(self._known) >= self._max_series:
                return OTHER, OTHER, OTHER, metric
            self._known.add(key)
            self._metrics.series.set(len(self._known))
        return service, prompt_version, model, metric

    def verdict(self, body: Mapping[str, Any], metric: str, result: CascadeVerdict, trace_id: str,
                span_id: str) -> None:
        labels = self._labels(str(body.get("service", "")), str(body.get("prompt_version") or ""),
                              str(body.get("request_model") or body.get("response_model") or ""), metric)
        verdict = result.verdict
        exemplar = {"trace_id": trace_id, "span_id": span_id}
        if verdict.score is None:
            self._metrics.verdicts.labels(*labels, "unjudged").inc()
        else:
            low = verdict.score < LOW_SCORE
            self._metrics.score.labels(*labels).observe(verdict.score, exemplar if low else None)
            outcome = "pass" if verdict.as_evaluation().passed else "fail"
            self._metrics.verdicts.labels(*labels, outcome).inc(1, exemplar if outcome == "fail" else None)
        if result.escalation:
            self._metrics.escalations.labels(*labels).inc()
        if verdict.cost_usd:
            self._metrics.cost_usd.labels(*labels).inc(verdict.cost_usd)

    def alert(self, alert: Alert) -> None:
        series = alert.series
        labels = self._labels(series.service, series.prompt_version, series.model, series.metric)
        exemplar = {"trace_id": alert.examples[0][0], "span_id": alert.examples[0][1]} if alert.examples else None
        self._metrics.alerts.labels(*labels, alert.cause).inc(1, exemplar)
