"""Feedback-triggered judging: negative feedback or a regeneration raises its trace's sampling to 1.0.

Either side may come first. Feedback after the trace: the trace's LLM spans that were not sampled are kept on disk
for `keep_unsampled` (bodies only, no scores), so they can be queued for judging. Feedback before the trace: the
trace id is remembered for `wait_for_trace`, and its LLM spans are sampled when they arrive. Either way the items
are a targeted stratum, `feedback:<reason>`, with probability 1 and outside the uniform sample; chosen by their
outcome, they count in calibration, golden sets and `GetTrace` but not in the series' estimates or detectors.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tracejudge.judge.queue import KeptSpan
from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.processor.pdata.sample import Sample, SamplingDecision
from tracejudge.stats.records import FEEDBACK_STRATUM

NOT_SAMPLED = SamplingDecision(False, 0.0, "", False)


@dataclass(frozen=True)
class FeedbackConfig:
    keep_unsampled: Duration = 3 * 86400.0  # keep LLM spans that were not sampled this long (0: not kept)
    max_kept: int = 200_000  # ... and at most this many (the oldest go first)
    wait_for_trace: Duration = 86400.0  # negative feedback whose trace has not arrived waits this long for it
    max_waiting_traces: int = 100_000

    def validate(self, path: str) -> None:
        problems = [f"{path}.{name}: must not be negative" for name in ("keep_unsampled", "wait_for_trace")
                    if getattr(self, name) < 0]
        problems += [f"{path}.{name}: must be at least 1" for name in ("max_kept", "max_waiting_traces")
                     if getattr(self, name) < 1]
        if problems:
            raise ConfigError(problems)


def triggered(decision_of: SamplingDecision, reason: str) -> SamplingDecision:
    """The decision for a span judged because of feedback (`decision_of` is what the sampler had decided)."""
    return SamplingDecision(True, 1.0, FEEDBACK_STRATUM + reason, False, decision_of.scale)


class FeedbackTrigger:
    """Remembers which traces negative feedback is waiting for; used from the event loop only."""

    def __init__(self, config: FeedbackConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._waiting: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()

    def wait_for(self, feedback: Sequence[Feedback]) -> set[str]:
        """Judge the spans of the traces negative feedback is about that arrive from now on, until `wait_for_trace`
        after the feedback was given; returns the traces now waited for."""
        now = self._clock()
        for record in feedback:
            until = (record.time_unix_nano / 1e9 or now) + self._config.wait_for_trace
            if record.negative and until > now:
                self._waiting[record.trace_id] = (record.reason, until)
                self._waiting.move_to_end(record.trace_id)
        while len(self._waiting) > self._config.max_waiting_traces:
            self._waiting.popitem(last=False)
        return {record.trace_id for record in feedback if record.trace_id in self._waiting}

    def samples(self, batch: TraceBatch) -> list[Sample]:
        """The LLM spans of `batch` that the sampler left out but feedback asks to have judged."""
        if not self._waiting:
            return []
        now = self._clock()
        sampled = {s.span.span_id for s in batch.samples}
        found = []
        for span in batch.llm_spans:
            waiting = self._waiting.get(span.trace_id)
            if waiting is None or span.span_id in sampled or not span.has_content:
                continue
            reason, until = waiting
            if until < now:
                del self._waiting[span.trace_id]
                continue
            found.append(Sample(span, triggered(NOT_SAMPLED, reason)))
        return found

    def kept(self, batch: TraceBatch, judged: Iterable[Sample],
             body: Callable[[Sample], dict[str, object]]) -> list[KeptSpan]:
        """The LLM spans of `batch` not queued for judging, to keep in case feedback asks for them later."""
        if not self._config.keep_unsampled:
            return []
        queued = {s.span.span_id for s in judged}
        return [KeptSpan(span.span_id, span.trace_id, body(Sample(span, NOT_SAMPLED)))
                for span in batch.llm_spans if span.span_id not in queued and span.has_content]
