"""The `llm_checks` processor: deterministic checks on every LLM span, written into it before it is forwarded."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, Counter

from tracejudge.judge.checks import Checks, ChecksConfig
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.evaluation_events import with_evaluation_events


class ChecksMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.verdicts = Counter(
            "tracejudge_checks", "Deterministic check verdicts on LLM spans, by check and label (pass/fail).",
            ["check", "label"], registry=registry)


class LlmChecksProcessor:
    """Runs after `llm_extract`. A batch without LLM spans, or whose checks all did not apply, passes untouched;
    otherwise the request is re-encoded once, with the results as `gen_ai.evaluation.result` events."""

    def __init__(self, settings: CreateSettings, config: ChecksConfig, next_consumer: TracesConsumer) -> None:
        self._checks = Checks(config)
        self._next = next_consumer
        self._counted = settings.host.telemetry.metrics(ChecksMetrics).verdicts

    async def consume(self, batch: TraceBatch) -> None:
        evaluations = {s.span_id: results for s in batch.llm_spans if (results := self._checks.run(s))}
        if not evaluations:
            await self._next.consume(batch)
            return
        response_ids = {s.span_id: s.response_id for s in batch.llm_spans}
        request, payload = with_evaluation_events(batch.payload, evaluations, response_ids)
        await self._next.consume(dataclasses.replace(batch, payload=payload, request=request,
                                                     evaluations=evaluations))
        for results in evaluations.values():
            for result in results:
                self._counted.labels(result.name, result.label).inc()

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


factory = Factory("llm_checks", "processors", ChecksConfig, LlmChecksProcessor, needs=frozenset({"llm_spans"}),
                  adds=frozenset({"evaluations"}))
