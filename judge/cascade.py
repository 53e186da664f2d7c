"""The judge cascade: the local tier decides what it is sure of; the heavy tier decides the rest.

An item goes to the heavy tier when the local score falls inside the uncertainty band, when a routing rule sends it
there (`CascadeItem.route`), or when the local tier could not judge it for a reason the heavy tier may not share.
When the heavy tier cannot answer (paused, out of budget, failing), a local verdict stands and the result says the
cascade was degraded; nothing is ever made up. With `disagreement` set, a heavy verdict far from the local one is
asked for once more and the two heavy scores averaged (self-consistency).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from tracejudge.processor.component.errors import ConfigError

from .verdict import Judge, JudgeInput, Verdict

# Unjudged because of the input itself: no other tier would do better.
INPUT_ERRORS = frozenset({"no_context", "no_content"})


@dataclass(frozen=True)
class CascadeConfig:
    uncertainty_band: tuple[float, float] = (0.3, 0.7)  # local scores in [low, high] go to the heavy tier
    disagreement: float = 0.0  # self-consistency: |local - heavy| at least this asks heavy again; 0 = off

    def validate(self, path: str) -> None:
        low, high = self.uncertainty_band
        if not 0 <= low <= high <= 1:
            raise ConfigError(f"{path}.uncertainty_band: give [low, high] with 0 <= low <= high <= 1")
        if not 0 <= self.disagreement <= 1:
            raise ConfigError(f"{path}.disagreement: must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class CascadeItem:
    input: JudgeInput
    route: str = ""  # the routing rule that sends this item to the heavy tier whatever the local verdict


@dataclass(frozen=True, slots=True)
class CascadeVerdict:
    verdict: Verdict  # the deciding verdict; its `tier` says which tier decided
    escalation: str = ""  # why the heavy tier was asked: uncertain | rule:<name> | local:<error type>
    degraded: str = ""  # why a verdict the heavy tier should have given is not its: its error type
    local: Verdict | None = None  # the local verdict, when there was one and the heavy tier was asked too
    heavy_calls: int = 0


class Cascade:
    tier = "cascade"

    def __init__(self, local: Judge | None, heavy: Judge | None, config: CascadeConfig,
                 heavy_again: Judge | None = None) -> None:
        """`heavy_again` answers self-consistency repeats: the heavy judge without its cache."""
        if local is None and heavy is None:
            raise ValueError("a cascade needs at least one tier")
        self._local = local
        self._heavy = heavy
        self._heavy_again = heavy_again or heavy
        self._config = config

    async def judge(self, items: Sequence[CascadeItem]) -> list[CascadeVerdict]:
        results: list[CascadeVerdict | None] = [None] * len(items)
        local_first = [i for i, item in enumerate(items) if self._local is not None and
                       not (item.route and self._heavy is not None)]
        local_verdicts: dict[int, Verdict] = {}
        if local_first:
            assert self._local is not None
            verdicts = await self._local.judge([items[i].input for i in local_first])
            local_verdicts = dict(zip(local_first, verdicts, strict=True))
        to_heavy: dict[int, str] = {}
        for i, item in enumerate(items):
            local = local_verdicts.get(i)
            reason = self._escalation(item, local)
            if reason and self._heavy is not None:
                to_heavy[i] = reason
            elif local is not None:
                results[i] = CascadeVerdict(local)
        if to_heavy:
            await self._ask_heavy(items, to_heavy, local_verdicts, results)
        return [r for r in results if r is not None]

    def _escalation(self, item: CascadeItem, local: Verdict | None) -> str:
        if local is None:
            return f"rule:{item.route}" if item.route else "no local tier"
        if item.route:
            return f"rule:{item.route}"
        if local.score is None:
            return "" if local.error_type in INPUT_ERRORS else f"local:{local.error_type}"
        low, high = self._config.uncertainty_band
        return "uncertain" if low <= local.score <= high else ""

    async def _ask_heavy(self, items: Sequence[CascadeItem], to_heavy: dict[int, str],
                         local_verdicts: dict[int, Verdict], results: list[CascadeVerdict | None]) -> None:
        assert self._heavy is not None
        indices = list(to_heavy)
        heavy_verdicts = dict(zip(indices, await self._heavy.judge([items[i].input for i in indices]), strict=True))
        again = [i for i in indices if self._disagree(local_verdicts.get(i), heavy_verdicts[i])]
        repeats: dict[int, Verdict] = {}
        if again and self._heavy_again is not None:
            answers = await self._heavy_again.judge([items[i].input for i in again])
            repeats = dict(zip(again, answers, strict=True))
        for i in indices:
            heavy, local, reason = heavy_verdicts[i], local_verdicts.get(i), to_heavy[i]
            if heavy.score is None and local is None and self._local is not None and items[i].route:
                # routed straight to a heavy tier that cannot answer: the local tier still can
                (local,) = await self._local.judge([items[i].input])
            calls = 1 + (i in repeats)
            if heavy.score is not None:
                results[i] = CascadeVerdict(_averaged(heavy, repeats.get(i)), reason, "", local, calls)
            elif local is not None and local.score is not None:
                results[i] = CascadeVerdict(local, reason, heavy.error_type, local, calls)
            else:
                results[i] = CascadeVerdict(heavy, reason, heavy.error_type, local, calls)

    def _disagree(self, local: Verdict | None, heavy: Verdict) -> bool:
        threshold = self._config.disagreement
        return bool(threshold and local is not None and local.score is not None and heavy.score is not None
                    and abs(local.score - heavy.score) >= threshold)


def _averaged(first: Verdict, second: Verdict | None) -> Verdict:
    """Two heavy verdicts on one item: their mean score, costs and tokens summed; the first alone if the second
    failed."""
    if second is None or second.score is None or first.score is None:
        return first
    score = (first.score + second.score) / 2
    return dataclasses.replace(
        first, score=score, label="pass" if score >= 0.5 else "fail",
        explanation=f"mean of two heavy verdicts ({first.score:.2f}, {second.score:.2f}): {first.explanation}",
        confidence=min(first.confidence, second.confidence), input_tokens=first.input_tokens + second.input_tokens,
        output_tokens=first.output_tokens + second.output_tokens, cost_usd=first.cost_usd + second.cost_usd,
        latency_s=first.latency_s + second.latency_s)
