"""Always-valid two-arm comparison: the mixture sequential probability ratio test with a normal mixture (Robbins
1970; Johari, Koomen, Pekelis & Walsh, "Always Valid Inference", Operations Research 2022, §4). With θ̂ the
difference of the arms' means (treatment − control), V = σ²(1/n_T + 1/n_C) its variance and a N(0, τ²) mixture over
the true difference,

    Λₙ = √(V/(V + τ²)) · exp(θ̂² τ² / (2V(V + τ²))),     p_n = min(p_{n−1}, 1/Λₙ),

and the test rejects "no difference" once p_n ≤ α. p_n is valid at every n at once, so a user may look after every
observation without inflating the false-positive rate (a fixed-n z-test looked at 10,000 times rejects a true null
about 65% of the time at α = 0.05). σ² is the pooled sample variance (plug-in), used once each arm has `min_n`.
"""

from __future__ import annotations

import math
from typing import Any

from .streaming import Moments, Streaming


class MixtureSprt(Streaming):
    """>>> t = MixtureSprt(tau=0.1, min_n=5)
    >>> for i in range(200):
    ...     t.update(0.9 if i % 2 else 0.88, "control")
    ...     t.update(0.7 if i % 2 else 0.68, "treatment")
    >>> t.rejected, t.direction
    (True, 'down')
    """

    ARMS = ("control", "treatment")

    def __init__(self, tau: float = 0.1, alpha: float = 0.05, min_n: int = 10) -> None:
        """`tau`: the mixture's sd over true differences, in the metric's units (about the size of the effect
        that matters); `alpha`: the false-positive rate under continuous monitoring."""
        if tau <= 0 or not 0 < alpha < 1 or min_n < 2:
            raise ValueError("MixtureSprt: tau must be > 0, alpha in (0, 1), min_n >= 2")
        self.tau, self.alpha, self.min_n = tau, alpha, min_n
        self._reset()

    def _reset(self) -> None:
        self.p_value = 1.0
        self.arms = {arm: Moments() for arm in self.ARMS}

    def state(self) -> dict[str, Any]:
        return {"p_value": self.p_value, **{arm: m.state() for arm, m in self.arms.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self.p_value = state["p_value"]
        for arm, m in self.arms.items():
            m.restore(state[arm])

    def update(self, x: float, arm: str) -> None:
        if arm not in self.arms:
            raise ValueError(f"MixtureSprt.update: arm must be one of {self.ARMS}, got {arm!r}")
        self.arms[arm].update(x)
        likelihood_ratio = self.likelihood_ratio
        if likelihood_ratio > 0:
            self.p_value = min(self.p_value, 1.0 / likelihood_ratio)

    def get(self) -> float:
        """The estimated difference, treatment − control."""
        return self.arms["treatment"].get() - self.arms["control"].get()

    @property
    def likelihood_ratio(self) -> float:
        """Λₙ; 0 until each arm has min_n observations and some spread."""
        control, treatment = self.arms["control"], self.arms["treatment"]
        n_c, n_t = control.n, treatment.n
        if min(n_c, n_t) < self.min_n:
            return 0.0
        pooled = (control.m2 + treatment.m2) / (n_c + n_t - 2)
        if pooled <= 0:
            return 0.0
        v = pooled * (1 / n_c + 1 / n_t)
        theta = self.get()
        tau2 = self.tau**2
        return math.sqrt(v / (v + tau2)) * math.exp(min(700.0, theta * theta * tau2 / (2 * v * (v + tau2))))

    @property
    def rejected(self) -> bool:
        return self.p_value <= self.alpha

    @property
    def direction(self) -> str | None:
        """"up" / "down" (treatment against control) once rejected."""
        if not self.rejected:
            return None
        return "up" if self.get() > 0 else "down"
