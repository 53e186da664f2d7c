"""The `judge_queue` processor's metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class JudgeQueueMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.enqueued = Counter(
            "tracejudge_judge_queue_enqueued", "Items (one per span and metric) committed to the judge queue.",
            registry=r)
        self.dropped = Counter(
            "tracejudge_judge_queue_dropped", "Items turned away because the judge queue was full, by policy.",
            ["policy"], registry=r)
        self.verdicts = Counter(
            "tracejudge_judge_verdicts", "Final verdicts, by deciding tier, metric and outcome (judged or the "
            "error type of an unjudged item).", ["tier", "metric", "outcome"], registry=r)
        self.escalations = Counter(
            "tracejudge_judge_escalations", "Items the cascade sent to the heavy tier, by reason.", ["reason"],
            registry=r)
        self.cost_usd = Counter(
            "tracejudge_judge_cost_usd", "What judging cost, from token usage and the configured prices.", ["tier"],
            registry=r)
        self.cache_hits = Counter(
            "tracejudge_judge_cache_hits", "Final verdicts taken from the verdict cache (they cost nothing).",
            ["tier"], registry=r)
        self.spent_usd = Gauge(
            "tracejudge_judge_spent_usd", "Spend of a judge tier today (UTC), against its daily budget.", ["tier"],
            registry=r)
        self.tier_paused = Gauge(
            "tracejudge_judge_tier_paused", "1 while a judge tier is paused after an auth or billing error.",
            ["tier"], registry=r)
        self.waiting = Gauge(
            "tracejudge_judge_queue_waiting", "Items in the judge queue not yet judged.", registry=r)
