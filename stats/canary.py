"""A candidate version against its baseline while both get traffic (a canary, or an A/B split): always-valid
sequential tests (msprt.MixtureSprt) on the score and on guardrails that must not regress, so the verdict may be read
after every observation.

Guardrails, each bad in one direction: `latency_p95` (the share of calls slower than the baseline's p95 when the
candidate appeared: a p95 regression is that share rising above 5%), `tokens` (log tokens per call: the cost proxy,
τ = log 1.1, a 10% change) and `refusal_rate`.
"""

from __future__ import annotations

import math
from typing import Any

from .config import StatsConfig
from .msprt import MixtureSprt
from .records import Evaluation

BAD_DIRECTION = {"score": "down", "latency_p95": "up", "tokens": "up", "refusal_rate": "up"}


class Canary:
    def __init__(self, config: StatsConfig) -> None:
        self._config = config
        self._reset()

    def _reset(self) -> None:
        config = self._config
        self.latency_limit_s = math.nan  # NaN: not running (no baseline, or it had no latency)
        self.tests = {"score": MixtureSprt(tau=config.drop, alpha=config.alpha, min_n=config.min_n),
                      "latency_p95": MixtureSprt(tau=0.05, alpha=config.alpha, min_n=config.min_n),
                      "tokens": MixtureSprt(tau=math.log(1.1), alpha=config.alpha, min_n=config.min_n),
                      "refusal_rate": MixtureSprt(tau=config.drop, alpha=config.alpha, min_n=config.min_n)}
        self.reported: list[str] = []  # metrics whose regression has been alerted

    def start(self, baseline_latency_p95_s: float) -> None:
        self._reset()
        self.latency_limit_s = baseline_latency_p95_s

    @property
    def running(self) -> bool:
        return not math.isnan(self.latency_limit_s)

    def update(self, e: Evaluation, arm: str) -> None:
        """`arm`: "treatment" for the candidate's uniform-stratum evaluations, "control" for the baseline's."""
        if not self.running:
            return
        self.tests["score"].update(e.score, arm)
        self.tests["latency_p95"].update(float(e.latency_s > self.latency_limit_s), arm)
        self.tests["tokens"].update(math.log1p(e.tokens), arm)
        self.tests["refusal_rate"].update(float(e.refused), arm)

    @property
    def regressed(self) -> list[str]:
        return [name for name, test in self.tests.items() if test.direction == BAD_DIRECTION[name]]

    @property
    def verdict(self) -> str:
        """"regressed: <metrics>" | "better" (score up, no guardrail regressed) | "undecided" | "not running"."""
        if not self.running:
            return "not running"
        if self.regressed:
            return "regressed: " + ", ".join(self.regressed)
        if self.tests["score"].direction == "up":
            return "better"
        return "undecided"

    def summary(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **{name: {"difference": round(t.get(), 4), "p_value": round(t.p_value, 6),
                                                   "n": [t.arms["control"].n, t.arms["treatment"].n]}
                                            for name, t in self.tests.items()}}

    def state(self) -> dict[str, Any]:
        return {"latency_limit_s": None if math.isnan(self.latency_limit_s) else self.latency_limit_s,
                "reported": self.reported, "tests": {name: t.state() for name, t in self.tests.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self._reset()
        limit = state["latency_limit_s"]
        self.latency_limit_s = math.nan if limit is None else limit
        self.reported = list(state["reported"])
        for name, test in self.tests.items():
            test.restore(state["tests"][name])
