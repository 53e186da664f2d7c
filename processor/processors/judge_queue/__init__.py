"""The `judge_queue` processor: commits sampled LLM spans to the durable judge queue before the request is
acknowledged, judges them off the request path (the cascade of judge/), sends the results back into the traces,
feeds the statistics (stats/) and takes feedback (for the eval_service extension)."""

from __future__ import annotations

from typing import Any

from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.processors.judge_queue.config import JudgeQueueStageConfig, RouteRule

__all__ = ["JudgeQueueStageConfig", "RouteRule", "factory"]


def create(settings: CreateSettings, config: JudgeQueueStageConfig, next_consumer: TracesConsumer) -> Any:
    # The stage loads the judges, the statistics and their numeric libraries: only a config that runs it pays that.
    from tracejudge.processor.processors.judge_queue.stage import JudgeQueueProcessor

    return JudgeQueueProcessor(settings, config, next_consumer)


factory = Factory("judge_queue", "processors", JudgeQueueStageConfig, create,
                  offers=frozenset({"feedback", "admin_routes", "worker_processes"}), needs=frozenset({"llm_spans"}),
                  uses=frozenset({"samples", "evaluations", "retrievals", "feedback"}))
