"""The `llm_extract` processor: recognises LLM spans in a batch and attaches them as LlmSpan records, with the
retriever spans' documents and any feedback the app recorded in span attributes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tracejudge.processor.component.consumer import TracesConsumer
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.extract import AttributeMap, Extractor
from tracejudge.processor.processors.llm_extract.feedback import FeedbackAttributes, FeedbackReader
from tracejudge.processor.service.decision_log import DecisionLog


@dataclass(frozen=True)
class LlmExtractConfig:
    # LlmSpan field → attribute key, for instrumentation that uses names of its own
    # (e.g. prompt_version: app.prompt.sha). Overrides what the conventions found.
    attributes: dict[str, str] = field(default_factory=dict)
    feedback: FeedbackAttributes = field(default_factory=FeedbackAttributes)  # span attributes carrying feedback

    def validate(self, path: str) -> None:
        AttributeMap(self.attributes).validate(f"{path}.attributes")
        self.feedback.validate(f"{path}.feedback")


class LlmExtractProcessor:
    """Only spans whose bytes show an LLM marker are looked at; batches without any pass through untouched.
    `decisions` is the service's decision log (it starts and stops with the service)."""

    def __init__(self, config: LlmExtractConfig, next_consumer: TracesConsumer, telemetry: Telemetry,
                 decisions: DecisionLog) -> None:
        self._extractor = Extractor(AttributeMap(config.attributes))
        self._feedback = FeedbackReader(config.feedback)
        self._next = next_consumer
        self._telemetry = telemetry
        self._decisions = decisions

    async def consume(self, batch: TraceBatch) -> None:
        llm_spans, retrievals = self._extractor.extract_all(batch.request, batch.payload)
        feedback = self._feedback.read(batch.request, batch.payload)
        if not llm_spans and not retrievals and not feedback:
            await self._next.consume(batch)
            return
        await self._next.consume(dataclasses.replace(batch, llm_spans=llm_spans, retrievals=retrievals,
                                                     feedback=feedback))
        # Counted and recorded only once accepted, so a client's retry of a refused batch counts once.
        for span in llm_spans:
            self._telemetry.llm_spans_extracted.labels(span.convention).inc()
            if not span.has_content:
                self._telemetry.llm_spans_without_content.labels(span.convention).inc()
        self._decisions.record_extracted(llm_spans)

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None
