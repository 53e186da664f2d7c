"""The judge contract: what a judge is given, what it answers, and the one protocol every tier implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tracejudge.processor.pdata.evaluation import EvaluationResult

METRICS = ("faithfulness", "relevancy")


@dataclass(frozen=True, slots=True)
class JudgeInput:
    """One thing to judge: untrusted text from a span, to be treated as data, never as instructions."""

    metric: str  # faithfulness | relevancy
    query: str
    response: str
    context: str = ""  # retrieved documents or grounding text; faithfulness needs it


@dataclass(frozen=True, slots=True)
class Verdict:
    """A score in [0, 1] (1 = good) with a label, or unjudged: score None and `error_type` saying why."""

    metric: str
    score: float | None
    label: str = ""  # pass | fail
    explanation: str = ""
    error_type: str = ""
    tier: str = ""  # local | heavy | ...
    judge_model: str = ""
    judge_prompt_version: str = ""
    confidence: float = 0.0  # in [0, 1]: how far the judge is from its own decision boundary
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cached: bool = False  # taken from the verdict cache: this use cost nothing
    redacted: tuple[tuple[str, int], ...] = ()  # what redaction replaced in what the judge was sent: (kind, count)

    @property
    def judged(self) -> bool:
        return self.score is not None

    def as_evaluation(self) -> EvaluationResult:
        return EvaluationResult(self.metric, self.score, self.label, self.explanation, self.error_type)


class Judge(Protocol):
    """A tier of the cascade. `judge` returns one verdict per input, in order, and never raises for a bad
    input or a failed call: those are unjudged verdicts with `error_type`. CPU work runs off the event loop.
    `model` and `prompt_version` identify what produces the verdicts (they key the verdict cache)."""

    tier: str
    model: str
    prompt_version: str

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]: ...

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        """What judging `item` is expected to cost, for budgets: an upper estimate, 0 for free tiers."""
        ...

    async def close(self) -> None: ...


class JudgeWrapper:
    """A judge in front of another (a cache, a gate): the same identity and cost estimates, closed together."""

    def __init__(self, judge: Judge) -> None:
        self._judge = judge
        self.tier = judge.tier
        self.model = judge.model
        self.prompt_version = judge.prompt_version

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        return self._judge.estimate_cost_usd(item)

    async def close(self) -> None:
        await self._judge.close()


def unjudged(item: JudgeInput, error_type: str, explanation: str, tier: str, judge_model: str) -> Verdict:
    return Verdict(item.metric, None, error_type=error_type, explanation=explanation, tier=tier,
                   judge_model=judge_model)
