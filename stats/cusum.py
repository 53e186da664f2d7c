"""Two-sided tabular CUSUM on standardised values (Page 1954; Montgomery, *Introduction to Statistical Quality
Control*, §9.1). With z = (x − μ₀)/σ₀:  C⁺ₜ = max(0, C⁺ₜ₋₁ + zₜ − k),  C⁻ₜ = max(0, C⁻ₜ₋₁ − zₜ − k);  alarm when
either exceeds h. k and h are in σ units (k = 0.5, h = 5: in-control ARL ≈ 465 observations, a 1σ shift found in
≈ 10.4, Montgomery Table 9.3). The reference (μ₀, σ₀) is given (the previous version's) or frozen from the first
`warmup` observations.
"""

from __future__ import annotations

import math
from typing import Any

from .streaming import Moments, Streaming


class Cusum(Streaming):
    """>>> c = Cusum(k=0.5, h=5.0, mean=0.0, sd=1.0)
    >>> for x in [0.1, -0.2, 2.0, 2.5, 3.0]:
    ...     c.update(x)
    >>> c.alarm, round(c.get(), 2)
    ('up', 6.0)
    """

    STATE = ("mean", "sd", "n", "upper", "lower", "upper_n", "lower_n", "alarm", "warm_n", "warm_mean", "warm_m2")

    def __init__(self, k: float = 0.5, h: float = 5.0, mean: float | None = None, sd: float | None = None,
                 warmup: int = 30, min_sd: float = 0.05) -> None:
        """`min_sd` floors a learnt σ₀: a constant warm-up (every score 1.0) must not put the first different score
        infinitely far away."""
        if k < 0 or h <= 0:
            raise ValueError("Cusum: k must be >= 0 and h > 0")
        if (mean is None) != (sd is None) or (sd is not None and sd <= 0):
            raise ValueError("Cusum: give both mean and a positive sd, or neither (then they are learnt)")
        if warmup < 2:
            raise ValueError("Cusum: warmup must be at least 2")
        self.k, self.h, self.warmup, self.min_sd = k, h, warmup, min_sd
        self._given = (mean, sd)
        self._reset()

    def _reset(self) -> None:
        self.mean, self.sd = self._given
        self.n = 0  # observations charted since the reference was set (or the last restart)
        self.upper = self.lower = 0.0
        self.upper_n = self.lower_n = 0  # consecutive observations each sum has been above zero
        self.alarm: str | None = None  # "up" / "down" once a sum crosses h; cleared by restart()
        self.warm_n, self.warm_mean, self.warm_m2 = 0, 0.0, 0.0

    def update(self, x: float) -> None:
        if self.mean is None or self.sd is None:
            self.warm_n += 1
            delta = x - self.warm_mean
            self.warm_mean += delta / self.warm_n
            self.warm_m2 += delta * (x - self.warm_mean)
            if self.warm_n >= self.warmup:
                self.mean = self.warm_mean
                self.sd = max(math.sqrt(self.warm_m2 / (self.warm_n - 1)), self.min_sd)
            return
        z = (x - self.mean) / self.sd
        self.n += 1
        self.upper = max(0.0, self.upper + z - self.k)
        self.lower = max(0.0, self.lower - z - self.k)
        self.upper_n = self.upper_n + 1 if self.upper > 0 else 0
        self.lower_n = self.lower_n + 1 if self.lower > 0 else 0
        if self.alarm is None and max(self.upper, self.lower) > self.h:
            self.alarm = "up" if self.upper > self.h else "down"

    def get(self) -> float:
        """The larger of the two sums, in σ units: the chart's value against its limit h."""
        return max(self.upper, self.lower)

    @property
    def shifted_mean(self) -> float | None:
        """After an alarm, the estimated new mean: μ₀ ± σ₀(k + C/N), N the observations since the alarming sum last
        left zero (Montgomery §9.1.2); None before."""
        if self.alarm is None or self.mean is None or self.sd is None:
            return None
        if self.alarm == "up":
            return self.mean + self.sd * (self.k + self.upper / max(1, self.upper_n))
        return self.mean - self.sd * (self.k + self.lower / max(1, self.lower_n))

    @property
    def ready(self) -> bool:
        """The reference is set (given, or the warm-up is over)."""
        return self.sd is not None

    def restart(self) -> None:
        """After an alarm has been handled: sums back to zero, same reference."""
        self.n = 0
        self.upper = self.lower = 0.0
        self.upper_n = self.lower_n = 0
        self.alarm = None


class ScoreChart(Streaming):
    """A Cusum of the means of `block` consecutive scores. Per-item judge scores are far from normal (often two
    values, 0.9 and 0.2); block means are close to it, so the ARL table holds, and the in-control ARL is `block`
    times longer in items while a sizeable shift is still found within a few blocks. The reference is given (the
    previous version's item mean and sd) or taken from the first `warmup` scores; the chart's σ₀ is sd/√block.

    >>> chart = ScoreChart(block=2, warmup=4)
    >>> for x in [0.9, 0.2, 0.9, 0.2] + [0.9, 0.2] * 3 + [0.2] * 14:
    ...     chart.update(x)
    >>> chart.alarm, chart.run.n
    ('down', 20)
    """

    STATE = ("warm", "block_scores", "run", "cusum", "reference")

    def __init__(self, k: float = 0.5, h: float = 5.0, block: int = 10, warmup: int = 200, min_sd: float = 0.05,
                 mean: float | None = None, sd: float | None = None) -> None:
        if block < 1 or warmup < 2:
            raise ValueError("ScoreChart: block >= 1 and warmup >= 2")
        self.k, self.h, self.block, self.warmup, self.min_sd = k, h, block, warmup, min_sd
        self._given = (mean, sd)
        self._reset()

    def _reset(self) -> None:
        self.warm = Moments()
        self.block_scores = Moments()
        self.run = Moments()  # every score charted so far
        self.cusum: Cusum | None = None
        self.reference: tuple[float, float] | None = None  # item mean and sd
        if self._given[0] is not None and self._given[1] is not None:
            self._set_reference(*self._given)  # type: ignore[arg-type]

    def _set_reference(self, mean: float, sd: float) -> None:
        self.reference = (mean, max(sd, self.min_sd))
        self.cusum = Cusum(self.k, self.h, mean=mean, sd=self.reference[1] / math.sqrt(self.block))

    def update(self, x: float) -> None:
        if self.cusum is None:
            self.warm.update(x)
            if self.warm.n >= self.warmup:
                self._set_reference(self.warm.mean, math.sqrt(self.warm.m2 / (self.warm.n - 1)))
            return
        self.run.update(x)
        self.block_scores.update(x)
        if self.block_scores.n == self.block:
            self.cusum.update(self.block_scores.mean)
            self.block_scores = Moments()

    def get(self) -> float:
        return self.cusum.get() if self.cusum else 0.0

    @property
    def alarm(self) -> str | None:
        return self.cusum.alarm if self.cusum else None

    @property
    def shifted_mean(self) -> float | None:
        """The estimated mean score after the shift (see Cusum.shifted_mean), and over how many scores."""
        return self.cusum.shifted_mean if self.cusum else None

    @property
    def shifted_n(self) -> int:
        if not self.cusum or not self.cusum.alarm:
            return 0
        return self.block * (self.cusum.upper_n if self.cusum.alarm == "up" else self.cusum.lower_n)

    def state(self) -> dict[str, Any]:
        return {"warm": self.warm.state(), "block_scores": self.block_scores.state(), "run": self.run.state(),
                "reference": list(self.reference) if self.reference else None,
                "cusum": self.cusum.state() if self.cusum else None}

    def restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self.warm.restore(state["warm"])
        self.block_scores.restore(state["block_scores"])
        self.run.restore(state["run"])
        if state["reference"]:
            self._set_reference(*state["reference"])
        if self.cusum and state["cusum"]:
            self.cusum.restore(state["cusum"])
