"""Decision records: what happened to each LLM span, so that "why wasn't this evaluated?" has an answer. Stages
hand them to the service's DecisionRecorder; `tracejudge explain` reads them back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

EXTRACTED = "extracted"
NO_CONTENT = "not judgeable: no content"
AWAITING_CONTENT = "awaiting content"  # none on the span: log records may carry it (llm_extract.log_content)
SAMPLED_OUT = "sampled out"
QUEUED = "queued"
JUDGED = "judged"
UNJUDGED = "unjudged"  # written "unjudged: <error.type>"
DROPPED = "dropped"  # written "dropped: <reason>"
WAITING = "waiting"  # written "waiting: tier_paused" or "waiting: budget_exhausted": no tier could answer yet
UNPROCESSABLE = "unprocessable"  # written "unprocessable: <stage>: <error>": forwarded as received, left out


@dataclass(frozen=True, slots=True)
class Decision:
    trace_id: str
    span_id: str
    decision: str
    service: str
    convention: str
    model: str
    prompt_version: str
    recorded_unix_s: float
    metric: str = ""  # for judged, unjudged and dropped records: the metric they are about
    detail: str = ""  # JSON: scores, tiers, probabilities, whatever the stage knew

    def row(self) -> tuple[str, str, str, str, str, str, str, float, str, str]:
        """The fields in order, as stored (dataclasses.astuple copies each value deeply: a third of the decision
        log's time under load)."""
        return (self.trace_id, self.span_id, self.decision, self.service, self.convention, self.model,
                self.prompt_version, self.recorded_unix_s, self.metric, self.detail)


@dataclass(frozen=True, slots=True)
class SpanFault:
    """A span a stage could not process: it is forwarded as received, counted and recorded, and left out."""

    trace_id: str
    span_id: str
    error: str  # the exception's type
    detail: str

    @classmethod
    def of(cls, trace_id: str, span_id: str, error: BaseException) -> SpanFault:
        return cls(trace_id, span_id, type(error).__name__, str(error)[:200])

    def decision(self, stage: str) -> Decision:
        """`unprocessable: <stage>: <error>`, with what little is known of the span."""
        return Decision(self.trace_id, self.span_id, f"{UNPROCESSABLE}: {stage}: {self.error}", "", "", "", "",
                        time.time(), detail=json.dumps({"error": self.detail}))


class DecisionRecorder(Protocol):
    """Takes records without blocking the caller; they are written in the background, in order (`record`: the
    last half second may be lost in a crash), or now (`write`: returns once they are durable)."""

    def record(self, records: Iterable[Decision]) -> None: ...

    async def write(self, records: Sequence[Decision]) -> None: ...
