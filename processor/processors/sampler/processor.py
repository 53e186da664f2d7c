"""The `sampler` processor: picks the LLM spans to judge and attaches them, with their decisions, to the batch."""

from __future__ import annotations

import dataclasses
import json

from prometheus_client import CollectorRegistry, Counter

from tracejudge.processor.component.decisions import SAMPLED_OUT
from tracejudge.processor.component.errors import StorageError
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.component.storage import DatabaseStorage
from tracejudge.processor.component.telemetry import count_each
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.llm_span import span_decision
from tracejudge.processor.pdata.sample import Sample
from tracejudge.processor.processors.sampler import versions
from tracejudge.processor.processors.sampler.sampling import Sampler, SamplerConfig
from tracejudge.processor.processors.sampler.versions import PromptVersions


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
        self._storage: DatabaseStorage | None = host.find("extensions", "database", config.storage) \
            if config.storage else None
        self._versions: PromptVersions | None = None
        self._id = f"processors/{settings.name}"
        self._status = host.status
        self._sampler = Sampler(config, scale=host.sampling_scale, first_seen=self._first_seen)
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

    def _first_seen(self, service: str, prompt_version: str, now: float) -> float:
        """The shared first sighting; if the store fails, this instance's (forwarding never waits on it)."""
        if self._versions is None:
            return now
        try:
            first = self._versions.first_seen(service, prompt_version, now)
        except StorageError as e:
            self._status.set_degraded(self._id, f"prompt versions' first sightings cannot be shared ({e}); this "
                                                "instance's are used")
            return now
        self._status.set_ok(self._id)
        return first

    async def start(self) -> None:
        if self._storage is not None:
            self._versions = PromptVersions(self._storage.database("sampler", versions.MIGRATIONS, versions.WHAT))

    async def shutdown(self) -> None:
        if self._versions is not None:
            self._versions.close()
            self._versions = None
