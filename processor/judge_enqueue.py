"""The `judge_queue` processor: commits the sampled LLM spans to the durable judge queue before the request is
acknowledged, one item per span and metric. Judging happens later, off the request path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig, NewItem

from .batch import TraceBatch
from .consumer import TracesConsumer
from .errors import ConfigError
from .sampling import Sample
from .telemetry import Telemetry


@dataclass(frozen=True)
class JudgeQueueStageConfig:
    storage: str  # a file_storage extension: the judge queue is always on disk
    metrics: tuple[str, ...] = ("faithfulness", "relevancy")
    # Identifies the judge configuration: items are unique per span, metric and judge version, so changing it
    # judges the same spans again.
    judge_version: str = "1"
    queue: JudgeQueueConfig = field(default_factory=JudgeQueueConfig)

    def validate(self, path: str) -> None:
        if not self.metrics:
            raise ConfigError(f"{path}.metrics: list at least one metric")


def item_body(sample: Sample) -> dict[str, Any]:
    """What a judge needs, and what makes its score attributable and weightable."""
    span, decision = sample.span, sample.decision
    return {
        "service": span.service, "operation": span.operation, "request_model": span.request_model,
        "response_model": span.response_model, "model_fingerprint": span.model_fingerprint,
        "prompt_name": span.prompt_name, "prompt_version": span.prompt_version, "response_id": span.response_id,
        "query": span.input_text, "response": span.output_text, "documents": list(span.documents),
        "probability": decision.probability, "stratum": decision.stratum, "in_uniform": decision.in_uniform,
    }  # fmt: skip


class JudgeEnqueueProcessor:
    """Place it after `sampler`. If the queue is full, the configured policy decides what is dropped; that is
    counted and logged, and never blocks forwarding."""

    def __init__(self, path: str, config: JudgeQueueStageConfig, next_consumer: TracesConsumer,
                 telemetry: Telemetry) -> None:
        self._path = path
        self._config = config
        self._next = next_consumer
        self._queue: JudgeQueue | None = None
        self._enqueued = telemetry.judge_queue_enqueued
        self._dropped = telemetry.judge_queue_dropped.labels(config.queue.when_full)

    async def consume(self, batch: TraceBatch) -> None:
        if batch.samples and self._queue is not None:
            items = [NewItem(s.span.span_id, s.span.trace_id, metric, item_body(s))
                     for s in batch.samples for metric in self._config.metrics]
            result = self._queue.enqueue(items)  # committed: a crash after the ack cannot lose them
            self._enqueued.inc(result.inserted)
            self._dropped.inc(len(result.turned_away))
        await self._next.consume(batch)

    async def start(self) -> None:
        self._queue = JudgeQueue(self._path, self._config.queue, self._config.judge_version)

    async def shutdown(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None
