"""Streaming estimators of a series: small objects with `update`, `get`, read-only verdicts and JSON state.

- `WeightedMean`: the Hájek (ratio) form of the Horvitz–Thompson mean, each value weighted by w = 1/π (π its
  inclusion probability): m = Σwx / Σw, with the with-replacement variance approximation
  Var(m) ≈ n/(n−1) · Σw²(x − m)² / (Σw)²  (Särndal, Swensson & Wretman, *Model Assisted Survey Sampling*, 1992,
  §5.7). With equal weights it is the sample mean and s²/n.
- `Moments`: the unweighted mean and variance (Welford 1962); on the uniform stratum it is the design-unbiased
  estimate that needs no weights.
- `Quantiles`: a log-bucketed histogram with relative accuracy `accuracy` (DDSketch, Masson et al. 2019) for latency
  and cost: bounded size, exact counts, JSON state.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

Z_95 = 1.959963984540054


class Streaming:
    """State is the attributes named in STATE, all set by `_reset()`; `state()` / `restore()` round-trip it as JSON."""

    STATE: ClassVar[tuple[str, ...]] = ()

    def _reset(self) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.STATE}

    def restore(self, state: dict[str, Any]) -> None:
        self._reset()
        for name in self.STATE:
            setattr(self, name, state[name])


class WeightedMean(Streaming):
    """>>> m = WeightedMean()
    >>> for x, p in [(1.0, 1.0), (0.0, 0.5), (1.0, 0.5)]:
    ...     m.update(x, p)
    >>> round(m.get(), 3), m.n
    (0.6, 3)
    """

    STATE = ("n", "sum_w", "sum_wx", "sum_wx2", "sum_w2", "sum_w2x", "sum_w2x2")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.sum_w = self.sum_wx = self.sum_wx2 = self.sum_w2 = self.sum_w2x = self.sum_w2x2 = 0.0

    def update(self, x: float, probability: float = 1.0) -> None:
        """`probability`: the inclusion probability the item was sampled with, in (0, 1]."""
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"WeightedMean: inclusion probability must be in (0, 1], got {probability}")
        w = 1.0 / probability
        self.n += 1
        self.sum_w += w
        self.sum_wx += w * x
        self.sum_wx2 += w * x * x
        self.sum_w2 += w * w
        self.sum_w2x += w * w * x
        self.sum_w2x2 += w * w * x * x

    def get(self) -> float:
        return self.sum_wx / self.sum_w if self.n else math.nan

    @property
    def variance(self) -> float:
        """Of the estimate (not of the values); nan below two observations."""
        if self.n < 2:
            return math.nan
        m = self.get()
        spread = self.sum_w2x2 - 2 * m * self.sum_w2x + m * m * self.sum_w2
        return max(0.0, spread) / self.sum_w**2 * self.n / (self.n - 1)

    @property
    def sd(self) -> float:
        """The weighted standard deviation of the values in the population (Σw(x − m)²/Σw · n/(n − 1))."""
        if self.n < 2:
            return math.nan
        m = self.get()
        return math.sqrt(max(0.0, self.sum_wx2 / self.sum_w - m * m) * self.n / (self.n - 1))

    @property
    def ci95(self) -> tuple[float, float]:
        half = Z_95 * math.sqrt(self.variance)
        return self.get() - half, self.get() + half

    @property
    def population(self) -> float:
        """Σw: the Horvitz–Thompson estimate of how many items the sample stands for."""
        return self.sum_w


class Moments(Streaming):
    """>>> m = Moments()
    >>> for x in [1.0, 2.0, 4.0]:
    ...     m.update(x)
    >>> m.get(), round(m.variance, 3)
    (2.3333333333333335, 2.333)
    """

    STATE = ("n", "mean", "m2")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def get(self) -> float:
        return self.mean if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance of the values (n − 1 denominator); nan below two observations."""
        return self.m2 / (self.n - 1) if self.n >= 2 else math.nan

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)

    @property
    def ci95(self) -> tuple[float, float]:
        half = Z_95 * math.sqrt(self.variance / self.n) if self.n >= 2 else math.nan
        return self.get() - half, self.get() + half


class Quantiles(Streaming):
    """Values ≤ 0 count in a zero bucket; any quantile is returned within `accuracy` relative error.

    >>> q = Quantiles()
    >>> for x in range(1, 101):
    ...     q.update(float(x))
    >>> abs(q.get(0.5) - 50) <= 0.02 * 50, abs(q.get(0.95) - 95) <= 0.02 * 95
    (True, True)
    """

    STATE = ("n", "zeros", "buckets")

    def __init__(self, accuracy: float = 0.01) -> None:
        if not 0.0 < accuracy < 1.0:
            raise ValueError("Quantiles: accuracy must be in (0, 1)")
        self.accuracy = accuracy
        self._gamma = (1 + accuracy) / (1 - accuracy)
        self._log_gamma = math.log(self._gamma)
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.zeros = 0
        self.buckets: dict[str, int] = {}  # str keys: the state is JSON

    def update(self, x: float) -> None:
        self.n += 1
        if x <= 0:
            self.zeros += 1
            return
        key = str(math.ceil(math.log(x) / self._log_gamma))
        self.buckets[key] = self.buckets.get(key, 0) + 1

    def get(self, q: float) -> float:
        """The q-quantile (lower), nan when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError("Quantiles.get: q must be in [0, 1]")
        if not self.n:
            return math.nan
        rank = q * (self.n - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for index in sorted(int(k) for k in self.buckets):
            seen += self.buckets[str(index)]
            if rank < seen:
                return 2 * self._gamma**index / (self._gamma + 1)
        raise RuntimeError(f"Quantiles: bucket counts add up to {seen}, not n={self.n} (corrupt state)")
