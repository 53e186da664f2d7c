"""The `llm_checks` processor: deterministic checks on every LLM span, written into it before it is forwarded."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, Counter

from tracejudge.judge.checks import Checks, ChecksConfig
from tracejudge.processor.component.decisions import SpanFault
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.component.telemetry import SpanFaultMetrics, count_each
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.evaluation_events import JudgedSpan, evaluation_request, with_evaluation_events


class ChecksMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.verdicts = Counter(
            "tracejudge_checks", "Deterministic check verdicts on LLM spans, by check and label (pass/fail).",
            ["check", "label"], registry=registry)


class LlmChecksProcessor:
    """Runs after `llm_extract`. A batch without LLM spans, or whose checks all did not apply, passes untouched;
    otherwise the results are written into its bytes as `gen_ai.evaluation.result` events on their spans. Spans
    completed after they were forwarded (content from log records) get theirs on an evaluation span."""

    def __init__(self, settings: CreateSettings, config: ChecksConfig, next_consumer: TracesConsumer) -> None:
        self._checks = Checks(config)
        self._next = next_consumer
        self._counted = settings.host.telemetry.metrics(ChecksMetrics).verdicts
        self._faults = settings.host.telemetry.metrics(SpanFaultMetrics).unprocessable
        self._decisions = settings.host.decisions

    async def consume(self, batch: TraceBatch) -> None:
        evaluations: dict[str, tuple[EvaluationResult, ...]] = {}
        faults = []
        for span in batch.llm_spans:
            try:
                if results := self._checks.run(span):
                    evaluations[span.span_id] = results
            except Exception as error:  # one span's content must not fail its request
                faults.append(SpanFault.of(span.trace_id, span.span_id, error))
        if evaluations and not batch.span_count:  # spans completed after they were forwarded
            batch = _on_evaluation_spans(batch, evaluations)
        elif evaluations:
            response_ids = {s.span_id: s.response_id for s in batch.llm_spans}
            times = {s.span_id: s.end_unix_nano or s.start_unix_nano for s in batch.llm_spans}
            payload = with_evaluation_events(batch.payload, evaluations, response_ids, times)
            batch = dataclasses.replace(batch, payload=payload, evaluations=evaluations)
        await self._next.consume(batch)
        # Counted and recorded only once accepted, so a client's retry of a refused batch counts once.
        count_each(self._counted, ((r.name, r.label) for results in evaluations.values() for r in results))
        for fault in faults:
            self._faults.labels("llm_checks", fault.error).inc()
        if faults:
            self._decisions.record(fault.decision("llm_checks") for fault in faults)

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


def _on_evaluation_spans(batch: TraceBatch, evaluations: dict[str, tuple[EvaluationResult, ...]]) -> TraceBatch:
    """Results for spans that left before their content came (from log records): on an evaluation span each, as
    judges' results are, within the checked span's interval."""
    request = evaluation_request([
        JudgedSpan(span.trace_id, span.span_id, evaluations[span.span_id], span.start_unix_nano,
                   span.end_unix_nano or span.start_unix_nano, span.response_id,
                   {"tracejudge.tier": "deterministic"}, version="checks")
        for span in batch.llm_spans if span.span_id in evaluations])
    return dataclasses.replace(batch, payload=request.SerializeToString(), request=request,
                               span_count=len(evaluations), evaluations=evaluations)


factory = Factory("llm_checks", "processors", ChecksConfig, LlmChecksProcessor, needs=frozenset({"llm_spans"}),
                  adds=frozenset({"evaluations"}))
