"""Configuration of the `judge_queue` processor: what to judge with which judges, the queue, workers, routes,
trace assembly, statistics, feedback and review."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tracejudge.judge.queue import JudgeQueueConfig
from tracejudge.judge.tiers import JudgesConfig
from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Reference
from tracejudge.processor.component.sqlite import Retention
from tracejudge.processor.component.storage import database_reference
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.llm_span import LlmSpan
from tracejudge.processor.processors.judge_queue.feedback_trigger import FeedbackConfig
from tracejudge.processor.processors.judge_queue.prompt_context import DEFAULT_MARKERS
from tracejudge.processor.processors.judge_queue.review_queue import ReviewConfig
from tracejudge.stats.config import StatsConfig


@dataclass(frozen=True)
class WorkerConfig:
    # judge worker processes `tracejudge serve` starts (each runs `count` workers); 0 judges in the receiving
    # process itself, sharing its event loop and GIL (small setups, tests). `tracejudge worker` runs more apart.
    processes: int = 1
    count: int = 2  # workers per process, each judging one leased batch at a time
    # added to a worker process's niceness (0-19): when receiving and judging compete for CPU, receiving wins and
    # judging lags (the queue absorbs it); 0 shares the CPU evenly
    nice: int = 10
    batch_size: int = 16  # items leased at once
    lease: Duration = 300.0  # an item leased longer than this (its worker died) is leased again
    poll_interval: Duration = 0.5  # how often an idle worker looks for ready items
    max_attempts: int = 3  # judging attempts per item before it is recorded as unjudged
    retry_backoff: Duration = 30.0  # wait before a retry, times the attempt number

    def validate(self, path: str) -> None:
        problems = [f"{path}.{name}: must be at least 1" for name in ("count", "batch_size", "max_attempts")
                    if getattr(self, name) < 1]
        if self.processes < 0:
            problems.append(f"{path}.processes: must not be negative (0: judge in the receiving process)")
        if not 0 <= self.nice <= 19:
            problems.append(f"{path}.nice: must be in [0, 19]")
        problems += [f"{path}.{name}: must be positive" for name in ("lease", "poll_interval")
                     if getattr(self, name) <= 0]
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class RouteRule:
    """Sends matching spans straight to the heavy tier: every condition given must hold."""

    name: str
    attribute: str = ""
    equals: str = ""  # with `attribute`: its value as text must equal this; without it, the attribute must exist
    failed_check: bool = False
    status: Literal["", "error", "ok", "unset"] = ""

    def validate(self, path: str) -> None:
        if not self.name:
            raise ConfigError(f"{path}.name: required")
        if self.equals and not self.attribute:
            raise ConfigError(f"{path}.equals: needs `attribute`")
        if not (self.attribute or self.failed_check or self.status):
            raise ConfigError(f"{path}: give at least one condition (attribute, failed_check, status)")

    def matches(self, span: LlmSpan, checks: tuple[EvaluationResult, ...]) -> bool:
        if self.status and span.status != self.status:
            return False
        if self.failed_check and all(result.passed for result in checks):
            return False
        if self.attribute:
            value = span.attributes.get(self.attribute)
            if value is None or (self.equals and str(value).lower() != self.equals.lower()):
                return False
        return True


@dataclass(frozen=True)
class JudgeQueueStageConfig:
    storage: str  # a file_storage (SQLite files) or postgresql (shared by a fleet) extension: the queue is durable
    metrics: tuple[str, ...] = ("faithfulness", "relevancy")
    # Identifies the judge configuration: items are unique per span, metric and judge version, so changing it
    # judges the same spans again.
    judge_version: str = "1"
    queue: JudgeQueueConfig = field(default_factory=JudgeQueueConfig)
    judges: JudgesConfig = field(default_factory=JudgesConfig)
    routes: tuple[RouteRule, ...] = ()
    workers: WorkerConfig = field(default_factory=WorkerConfig)
    decision_wait: Duration = 2.0  # after a trace's root span, how long without new spans before judging it
    max_decision_wait: Duration = 30.0  # judge a trace whose root span never arrives after this long
    max_buffered_traces: int = 100_000  # traces whose root sighting or documents are remembered in memory
    # quality series on /metrics (service, prompt_version, model, metric) with labels of their own; the rest are
    # counted under "_other"
    max_quality_series: int = 500
    # Where the prompt itself holds the grounding, for spans whose trace retrieved nothing: the block after the first
    # of these markers in the system prompt (then a user message); "<tag>" markers end at "</tag>". () turns it off.
    context_markers: tuple[str, ...] = DEFAULT_MARKERS
    stats: StatsConfig = field(default_factory=StatsConfig)  # per-series statistics and alerts (stats.db)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)  # feedback-triggered judging
    review: ReviewConfig = field(default_factory=ReviewConfig)  # verdicts a person should look at, to a JSONL file
    # finished items (judged, given up on, dropped: prompts, answers, context) are deleted after `max_age`, or
    # oldest first while the queue's file is over `max_mib`; waiting items are never (`queue.max_items` bounds them)
    retention: Retention = field(default_factory=Retention)

    def references(self, path: str) -> list[Reference]:
        return [database_reference(self.storage, f"{path}.storage")]

    def withheld(self, capability: str) -> str:
        """Feedback is stored with the statistics: without them this stage takes none."""
        if capability == "feedback" and not self.stats.enabled:
            return "feedback is stored with the statistics, which are off in that judge_queue processor (stats.enabled)"
        return ""

    def validate(self, path: str) -> None:
        problems = []
        if not self.metrics:
            problems.append(f"{path}.metrics: list at least one metric")
        known = self.judges.local.metrics | self.judges.heavy.metrics
        problems += [f"{path}.metrics: no judge tier judges {m!r} (they judge: {', '.join(sorted(known))})"
                     for m in self.metrics if m not in known]
        if self.decision_wait > self.max_decision_wait:
            problems.append(f"{path}.decision_wait: must not exceed max_decision_wait")
        problems += [f"{path}.context_markers: an empty marker would match every prompt"
                     for marker in self.context_markers if not marker.strip()][:1]
        if self.max_quality_series < 1:
            problems.append(f"{path}.max_quality_series: must be at least 1")
        if self.max_buffered_traces < 1:
            problems.append(f"{path}.max_buffered_traces: must be at least 1")
        names = [rule.name for rule in self.routes]
        problems += [f"{path}.routes: rule name {n!r} is used more than once" for n in set(names)
                     if names.count(n) > 1]
        if problems:
            raise ConfigError(problems)
