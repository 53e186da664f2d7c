"""An evaluation result as it is written into a trace: one `gen_ai.evaluation.result` event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """A score in [0, 1] (1 = good) with its label, or, with `error_type` set, no score at all."""

    name: str  # gen_ai.evaluation.name, e.g. tracejudge.check.truncated
    score: float | None
    label: str = ""  # pass | fail for checks
    explanation: str = ""
    error_type: str = ""  # why there is no score

    @property
    def passed(self) -> bool:
        return self.score is not None and self.score >= 0.5
