"""The `llm_extract` processor: recognises LLM spans in a batch and attaches them as LlmSpan records, with the
retriever spans' documents and any feedback the app recorded in span attributes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.component.telemetry import SpanFaultMetrics, count_each
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.extract import AttributeMap, Extractor
from tracejudge.processor.pdata.llm_span import decision_for, span_decision
from tracejudge.processor.processors.llm_extract.feedback_attributes import FeedbackAttributes, FeedbackReader


@dataclass(frozen=True)
class LlmExtractConfig:
    # LlmSpan field → attribute key, for instrumentation that uses names of its own
    # (e.g. prompt_version: app.prompt.sha). Overrides what the conventions found.
    attributes: dict[str, str] = field(default_factory=dict)
    feedback: FeedbackAttributes = field(default_factory=FeedbackAttributes)  # span attributes carrying feedback

    def validate(self, path: str) -> None:
        AttributeMap(self.attributes).validate(f"{path}.attributes")
        self.feedback.validate(f"{path}.feedback")


class ExtractMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.extracted = Counter(
            "tracejudge_llm_spans_extracted", "LLM spans recognised, by the convention that identified them.",
            ["convention"], registry=registry)
        self.without_content = Counter(
            "tracejudge_llm_spans_without_content", "LLM spans without captured content (not judgeable).",
            ["convention"], registry=registry)


class LlmExtractProcessor:
    """Only spans whose bytes show an LLM marker are looked at; batches without any pass through untouched."""

    def __init__(self, settings: CreateSettings, config: LlmExtractConfig, next_consumer: TracesConsumer) -> None:
        self._extractor = Extractor(AttributeMap(config.attributes))
        self._feedback = FeedbackReader(config.feedback)
        self._next = next_consumer
        self._metrics = settings.host.telemetry.metrics(ExtractMetrics)
        self._faults = settings.host.telemetry.metrics(SpanFaultMetrics).unprocessable
        self._decisions = settings.host.decisions

    async def consume(self, batch: TraceBatch) -> None:
        llm_spans, retrievals, unprocessable = self._extractor.extract_all(batch.request, batch.payload)
        feedback = self._feedback.read(batch.request, batch.payload)
        if llm_spans or retrievals or feedback:
            batch = dataclasses.replace(batch, llm_spans=llm_spans, retrievals=retrievals, feedback=feedback)
        await self._next.consume(batch)
        # Counted and recorded only once accepted, so a client's retry of a refused batch counts once.
        count_each(self._metrics.extracted, ((span.convention,) for span in llm_spans))
        count_each(self._metrics.without_content, ((span.convention,) for span in llm_spans if not span.has_content))
        self._decisions.record([span_decision(span, decision_for(span)) for span in llm_spans])
        if unprocessable:
            for fault in unprocessable:
                self._faults.labels("llm_extract", fault.error).inc()
            self._decisions.record(fault.decision("llm_extract") for fault in unprocessable)

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
