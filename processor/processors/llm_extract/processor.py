"""The `llm_extract` processor: recognises LLM spans in a batch and attaches them as LlmSpan records, with the
retriever spans' documents and any feedback the app recorded in span attributes; completes spans whose content
came in log records (see log_content.py) when a logs pipeline shares a receiver with its traces pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry, Counter, Gauge

from tracejudge.processor.component.decisions import DROPPED, Decision
from tracejudge.processor.component.errors import PermanentError, RetryableError, StorageError
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.component.telemetry import SpanFaultMetrics, count_each
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import SignalBatch, TraceBatch
from tracejudge.processor.pdata.extract import AttributeMap, Extractor
from tracejudge.processor.pdata.llm_span import LlmSpan, extraction_decision, span_decision
from tracejudge.processor.processors.llm_extract.feedback_attributes import FeedbackAttributes, FeedbackReader
from tracejudge.processor.processors.llm_extract.log_content import (
    EVENT_MARKER,
    ContentJoin,
    LogContentConfig,
    read_events,
)

log = logging.getLogger(__name__)

EXPIRY_S = 1.0  # how often spans whose wait for content is over are given up on


@dataclass(frozen=True)
class LlmExtractConfig:
    # LlmSpan field → attribute key, for instrumentation that uses names of its own
    # (e.g. prompt_version: app.prompt.sha). Overrides what the conventions found.
    attributes: dict[str, str] = field(default_factory=dict)
    feedback: FeedbackAttributes = field(default_factory=FeedbackAttributes)  # span attributes carrying feedback
    log_content: LogContentConfig = field(default_factory=LogContentConfig)  # content from log records

    def validate(self, path: str) -> None:
        AttributeMap(self.attributes).validate(f"{path}.attributes")
        self.feedback.validate(f"{path}.feedback")
        self.log_content.validate(f"{path}.log_content")


class ExtractMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.extracted = Counter(
            "tracejudge_llm_spans_extracted", "LLM spans recognised, by the convention that identified them.",
            ["convention"], registry=registry)
        self.without_content = Counter(
            "tracejudge_llm_spans_without_content", "LLM spans without captured content (not judgeable), counted "
            "once their wait for content from log records, if any, is over.", ["convention"], registry=registry)
        self.content_from_logs = Counter(
            "tracejudge_llm_spans_content_from_logs", "LLM spans whose content came from log records.",
            ["convention"], registry=registry)
        self.awaiting_content = Gauge(
            "tracejudge_llm_spans_awaiting_content", "LLM spans without content waiting for log records carrying it.",
            ["processor"], registry=registry)


class LlmExtractProcessor:
    """Only spans whose bytes show an LLM marker are looked at; batches without any pass through untouched.

    With a logs pipeline attached, an LLM span without content waits (up to `log_content.wait`) for log records
    carrying it, and content waits for its span: whichever comes second completes the span. A span completed by a
    later logs batch goes on alone, in a TraceBatch with nothing to forward (span_count 0)."""

    def __init__(self, settings: CreateSettings, config: LlmExtractConfig, next_consumer: TracesConsumer,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._name = settings.name
        self._extractor = Extractor(AttributeMap(config.attributes))
        self._feedback = FeedbackReader(config.feedback)
        self._next = next_consumer
        self._metrics = settings.host.telemetry.metrics(ExtractMetrics)
        self._faults = settings.host.telemetry.metrics(SpanFaultMetrics).unprocessable
        self._decisions = settings.host.decisions
        self._log_content = config.log_content
        self._join: ContentJoin | None = None
        self._clock = clock
        self._expiry: asyncio.Task[None] | None = None

    def attach_logs(self) -> None:
        self._join = ContentJoin(self._log_content)

    async def consume(self, batch: TraceBatch) -> None:
        llm_spans, retrievals, unprocessable = self._extractor.extract_all(batch.request, batch.payload)
        feedback = self._feedback.read(batch.request, batch.payload)
        join, now = self._join, self._clock()
        if join is not None and llm_spans:  # completed by log records that came first (settled once accepted)
            llm_spans = tuple(span if span.has_content else join.peek(span) or span for span in llm_spans)
        if llm_spans or retrievals or feedback:
            batch = dataclasses.replace(batch, llm_spans=llm_spans, retrievals=retrievals, feedback=feedback)
        waits = [span for span in llm_spans if not span.has_content] if join is not None else []
        waiting = {id(span) for span in waits}
        detail = json.dumps({"wait_s": self._log_content.wait})
        # made now, so they are dated before what the stages after this one record about the same spans
        records = [extraction_decision(span, id(span) in waiting, detail if id(span) in waiting else "")
                   for span in llm_spans]
        await self._next.consume(batch)
        # Counted and recorded only once accepted, so a client's retry of a refused batch counts once; a span that
        # waits does so only then, and its retry waits again from then.
        count_each(self._metrics.extracted, ((span.convention,) for span in llm_spans))
        count_each(self._metrics.without_content, ((span.convention,) for span in llm_spans
                                                   if not span.has_content and join is None))
        count_each(self._metrics.content_from_logs, ((span.convention,) for span in llm_spans
                                                     if span.content_source.startswith("log")))
        self._decisions.record(records)
        if unprocessable:
            for fault in unprocessable:
                self._faults.labels("llm_extract", fault.error).inc()
            self._decisions.record(fault.decision("llm_extract") for fault in unprocessable)
        if join is not None:
            for span in llm_spans:
                if span.has_content:
                    join.settle((span.trace_id, span.span_id), now)
            later = [done for span in waits if (done := join.span_arrived(span, now)) is not None]
            self._metrics.awaiting_content.labels(self._name).set(join.waiting)
            if later:  # their content arrived while this batch was on its way
                await self._completed_after_accepted(later)

    async def _completed_after_accepted(self, spans: list[LlmSpan]) -> None:
        """The request is accepted: a refusal now would make its client send it again, so what cannot go on is
        recorded instead (the content is spent)."""
        try:
            await self._completed(spans)
        except (RetryableError, PermanentError, StorageError) as error:
            log.warning("llm_extract: %d span(s) completed by log records could not be handed on: %s", len(spans),
                        error)
            self._decisions.record([span_decision(span, f"{DROPPED}: not queued after its content came ("
                                                  f"{type(error).__name__})", detail=json.dumps({"error": str(error)}))
                                    for span in spans])

    async def consume_logs(self, batch: SignalBatch) -> None:
        """The GenAI events of a logs batch; the spans they complete go on now, before the logs are forwarded."""
        join = self._join
        if join is None or EVENT_MARKER not in batch.payload:
            return
        assert isinstance(batch.request, ExportLogsServiceRequest)
        events = read_events(batch.request)
        if not events:
            return
        now = self._clock()
        done = join.content_arrived(events, now)
        self._metrics.awaiting_content.labels(self._name).set(join.waiting)
        if done:
            try:
                await self._completed([span for _, span in done])
            except BaseException:
                join.wait_again([waited for waited, _ in done], now)
                raise

    async def _completed(self, spans: Sequence[LlmSpan]) -> None:
        late = TraceBatch(payload=b"", request=ExportTraceServiceRequest(), span_count=0, llm_spans=tuple(spans))
        await self._next.consume(late)
        count_each(self._metrics.content_from_logs, ((span.convention,) for span in spans))
        self._decisions.record([extraction_decision(span) for span in spans])

    async def _expiring(self, join: ContentJoin) -> None:
        while True:
            await asyncio.sleep(EXPIRY_S)
            try:
                self._give_up(join.expired(self._clock()))
                self._metrics.awaiting_content.labels(self._name).set(join.waiting)
            except Exception:  # the wait must keep being bounded whatever one sweep meets
                log.exception("llm_extract: expiring spans that wait for content failed; tried again in %g s",
                              EXPIRY_S)

    def _give_up(self, given_up: Iterable[tuple[LlmSpan, str]]) -> None:
        records: list[Decision] = []
        for span, reason in given_up:
            self._metrics.without_content.labels(span.convention).inc()
            records.append(extraction_decision(span, detail=json.dumps({"reason": reason})))
        if records:
            self._decisions.record(records)

    async def start(self) -> None:
        if self._join is not None:
            self._expiry = asyncio.create_task(self._expiring(self._join), name=f"{self._name} content wait")

    async def shutdown(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
            self._expiry = None
        if self._join is not None:
            self._give_up(self._join.expired(float("inf")))
