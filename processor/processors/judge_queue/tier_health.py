"""Judge tiers' health as an operator sees it: a tier whose calls fail is degraded — in the health check, in
`tracejudge_component_degraded` and in the log — from its first failure until one of its verdicts succeeds."""

from __future__ import annotations

from collections.abc import Iterable

from tracejudge.judge.cascade import INPUT_ERRORS, CascadeVerdict
from tracejudge.processor.component.host import ComponentStatus

# Unjudged for what the span lacks or the config asks, not for anything wrong with the tier.
NOT_TIER_FAULTS = INPUT_ERRORS | {"unsupported_metric"}


class TierHealth:
    def __init__(self, status: ComponentStatus, stage: str) -> None:
        self._status = status
        self._stage = stage  # processors/<name>

    def component(self, tier: str) -> str:
        return f"{self._stage} tier {tier}"

    def observe(self, results: Iterable[CascadeVerdict]) -> None:
        failing: dict[str, str] = {}
        answered: set[str] = set()
        for result in results:
            verdict = result.verdict
            if result.degraded and result.degraded not in NOT_TIER_FAULTS:  # the heavy tier failed
                failing.setdefault("heavy", f"{result.degraded} (the local verdict was kept)")
            if verdict.error_type and verdict.error_type not in NOT_TIER_FAULTS:
                failing.setdefault(verdict.tier or "?", f"{verdict.error_type}: {verdict.explanation[:200]}")
            elif verdict.judged and verdict.tier:
                answered.add(verdict.tier)
        for tier in answered - failing.keys():
            self._status.set_ok(self.component(tier))
        for tier, reason in failing.items():
            self._status.set_degraded(self.component(tier), reason)
