"""tracejudge's own metrics (Prometheus), named after the Collector's `otelcol_*` self-metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Telemetry"]


class Telemetry:
    """One registry per running service, so tests and several pipelines in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.receiver_accepted_spans = Counter(
            "tracejudge_receiver_accepted_spans", "Spans accepted by a receiver and handed to the pipeline.",
            ["receiver", "transport"], registry=r)
        self.receiver_refused_spans = Counter(
            "tracejudge_receiver_refused_spans", "Spans refused by a receiver (whole requests or partial rejects).",
            ["receiver", "transport", "reason"], registry=r)
        self.receiver_refused_requests = Counter(
            "tracejudge_receiver_refused_requests", "Requests refused by a receiver, by status.",
            ["receiver", "transport", "reason"], registry=r)
        self.exporter_sent_spans = Counter(
            "tracejudge_exporter_sent_spans", "Spans an exporter delivered downstream.", ["exporter"], registry=r)
        self.exporter_send_failed_spans = Counter(
            "tracejudge_exporter_send_failed_spans",
            "Spans an exporter gave up on after its retries (or a permanent downstream error).",
            ["exporter"], registry=r)
        self.exporter_enqueue_failed_spans = Counter(
            "tracejudge_exporter_enqueue_failed_spans",
            "Spans refused because an exporter's sending queue was full (the client was told to retry).",
            ["exporter"], registry=r)
        self.exporter_queue_size = Gauge(
            "tracejudge_exporter_queue_size", "What waits in an exporter's sending queue, in its sizer's unit.",
            ["exporter"], registry=r)
        self.exporter_queue_capacity = Gauge(
            "tracejudge_exporter_queue_capacity", "Capacity of an exporter's sending queue, in its sizer's unit.",
            ["exporter"], registry=r)
        self.llm_spans_extracted = Counter(
            "tracejudge_llm_spans_extracted", "LLM spans recognised, by the convention that identified them.",
            ["convention"], registry=r)
        self.llm_spans_without_content = Counter(
            "tracejudge_llm_spans_without_content", "LLM spans without captured content (not judgeable).",
            ["convention"], registry=r)

        self.checks = Counter(
            "tracejudge_checks", "Deterministic check verdicts on LLM spans, by check and label (pass/fail).",
            ["check", "label"], registry=r)
        self.sampling_decisions = Counter(
            "tracejudge_sampling_decisions", "Sampling decisions on judgeable LLM spans, by stratum and outcome.",
            ["stratum", "outcome"], registry=r)
        self.judge_queue_enqueued = Counter(
            "tracejudge_judge_queue_enqueued", "Items (one per span and metric) committed to the judge queue.",
            registry=r)
        self.judge_queue_dropped = Counter(
            "tracejudge_judge_queue_dropped", "Items turned away because the judge queue was full, by policy.",
            ["policy"], registry=r)
        self.judge_verdicts = Counter(
            "tracejudge_judge_verdicts", "Final verdicts, by deciding tier, metric and outcome (judged or the "
            "error type of an unjudged item).", ["tier", "metric", "outcome"], registry=r)
        self.judge_escalations = Counter(
            "tracejudge_judge_escalations", "Items the cascade sent to the heavy tier, by reason.", ["reason"],
            registry=r)
        self.judge_cost_usd = Counter(
            "tracejudge_judge_cost_usd", "What judging cost, from token usage and the configured prices.", ["tier"],
            registry=r)
        self.judge_cache_hits = Counter(
            "tracejudge_judge_cache_hits", "Final verdicts taken from the verdict cache (they cost nothing).",
            ["tier"], registry=r)
        self.judge_spent_usd = Gauge(
            "tracejudge_judge_spent_usd", "Spend of a judge tier today (UTC), against its daily budget.", ["tier"],
            registry=r)
        self.judge_tier_paused = Gauge(
            "tracejudge_judge_tier_paused", "1 while a judge tier is paused after an auth or billing error.",
            ["tier"], registry=r)
        self.judge_queue_waiting = Gauge(
            "tracejudge_judge_queue_waiting", "Items in the judge queue not yet judged.", registry=r)
        self.sampling_scale = Gauge(
            "tracejudge_sampling_scale", "The share of the configured sampling rates in force (below 1 when a "
            "judge budget runs low).", registry=r)
        self.sampling_scale.set(1)
        self.decisions_dropped = Counter(
            "tracejudge_decisions_dropped", "Decision records not kept because the decision log fell behind.",
            registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
