"""The `sampler` processor: picks the LLM spans to judge and attaches them, with their decisions, to the batch."""

from __future__ import annotations

import dataclasses
import json

from prometheus_client import CollectorRegistry, Counter

from tracejudge.processor.component.decisions import SAMPLED_OUT
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.component.telemetry import count_each
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.llm_span import span_decision
from tracejudge.processor.pdata.sample import Sample
from tracejudge.processor.processors.sampler.sampling import Sampler, SamplerConfig


class SamplerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "tracejudge_sampling_decisions", "Sampling decisions on judgeable LLM spans, by stratum and outcome.",
            ["stratum", "outcome"], registry=registry)


class LlmSamplerProcessor:
    """Runs after `llm_extract` (and `llm_checks`, whose failures rules may target). Spans without content are
    not judgeable and get no decision. Forwarding is unaffected: only `batch.samples` changes. Spans sampled out
    get a decision record; sampled ones get theirs from the judge queue."""

    def __init__(self, settings: CreateSettings, config: SamplerConfig, next_consumer: TracesConsumer) -> None:
        host = settings.host
        self._sampler = Sampler(config, scale=host.sampling_scale)
        self._next = next_consumer
        self._counted = host.telemetry.metrics(SamplerMetrics).decisions
        self._decisions = host.decisions

    async def consume(self, batch: TraceBatch) -> None:
        judgeable = [span for span in batch.llm_spans if span.has_content]
        if not judgeable:
            await self._next.consume(batch)
            return
        decided = [Sample(span, self._sampler.decide(span, batch.evaluations.get(span.span_id, ())))
                   for span in judgeable]
        samples = tuple(sample for sample in decided if sample.decision.sampled)
        records = [span_decision(s.span, SAMPLED_OUT, detail=json.dumps(  # dated before the judge queue's records
            {"probability": s.decision.probability, "stratum": s.decision.stratum, "scale": s.decision.scale}))
            for s in decided if not s.decision.sampled]
        await self._next.consume(dataclasses.replace(batch, samples=samples) if samples else batch)
        count_each(self._counted, ((s.decision.stratum, "sampled" if s.decision.sampled else "sampled out")
                                   for s in decided))
        self._decisions.record(records)

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
