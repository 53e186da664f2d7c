"""Fixed-sample comparison of a current version against a baseline: Welch's t-test on mean scores and the
two-proportion z-test on pass rates, with effect, confidence interval, p, n per arm, the minimum detectable drop at
the current n and the n per arm a configured drop needs.

- Welch (1947): t = (m₁ − m₀)/√(V₁ + V₀), V the variance of each mean, Satterthwaite df = (V₁ + V₀)² /
  (V₁²/(n₁−1) + V₀²/(n₀−1)). With the Hájek variance of a weighted mean (streaming.WeightedMean) it is the
  design-weighted version; with equal weights it is exactly scipy.stats.ttest_ind(equal_var=False).
- Two proportions: pooled z = (p₁ − p₀)/√(p̄(1 − p̄)(1/n₁ + 1/n₀)) (equal to the 2×2 χ² test without continuity
  correction); the interval is the unpooled Wald one.
- Minimum detectable drop (two-sided α, power 1 − β, normal approximation): (z₁₋α/₂ + z₁₋β)·√(V₁ + V₀); n per arm
  for a drop δ: (z₁₋α/₂ + z₁₋β)²·(s₁² + s₀²)/δ².
- Paired (the CI gate: the same golden records scored twice), d = current − baseline: t = mean(d)/(sd(d)/√n) with
  n − 1 df, one-sided p = P(T ≤ t) for "current is worse" (scipy.stats.ttest_rel(current, baseline,
  alternative="less")), interval mean(d) ± t₀.₉₇₅,ₙ₋₁·sd(d)/√n.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from scipy import stats as scipy_stats

from .streaming import Moments, WeightedMean


@dataclasses.dataclass(frozen=True)
class Summary:
    """One arm: its estimate, the variance of that estimate, the values' sd and n."""

    mean: float
    variance_of_mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, estimate: Moments | WeightedMean) -> Summary:
        if isinstance(estimate, Moments):
            return cls(estimate.get(), estimate.variance / estimate.n if estimate.n else math.nan, estimate.sd,
                       estimate.n)
        return cls(estimate.get(), estimate.variance, estimate.sd, estimate.n)


@dataclasses.dataclass(frozen=True)
class Comparison:
    test: str  # "welch" | "two_proportions"
    baseline: float
    current: float
    n_baseline: int
    n_current: int
    effect: float  # current − baseline (negative: worse, scores being higher-is-better)
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    alpha: float
    standardized_effect: float  # Cohen's d, or Cohen's h for proportions
    minimum_detectable_drop: float  # at the current n, power 1 − beta
    n_needed_per_arm: int  # for the configured drop, power 1 − beta

    @property
    def regressed(self) -> bool:
        return self.p_value < self.alpha and self.effect < 0

    @property
    def improved(self) -> bool:
        return self.p_value < self.alpha and self.effect > 0


def welch(baseline: Summary, current: Summary, alpha: float = 0.05, power: float = 0.8,
          drop: float = 0.05) -> Comparison:
    """Both arms need n ≥ 2 and some spread between them."""
    _check(alpha, power, drop)
    if min(baseline.n, current.n) < 2:
        raise ValueError("welch: each arm needs at least 2 observations")
    v0, v1 = baseline.variance_of_mean, current.variance_of_mean
    se = math.sqrt(v0 + v1)
    effect = current.mean - baseline.mean
    if se == 0:
        raise ValueError("welch: both arms are constant; there is no variance to test against")
    df = (v0 + v1) ** 2 / (v0**2 / (baseline.n - 1) + v1**2 / (current.n - 1))
    statistic = effect / se
    p = float(2 * scipy_stats.t.sf(abs(statistic), df))
    half = float(scipy_stats.t.ppf(1 - alpha / 2, df)) * se
    pooled_sd = math.sqrt((baseline.sd**2 + current.sd**2) / 2)
    return Comparison("welch", baseline.mean, current.mean, baseline.n, current.n, effect, effect - half,
                      effect + half, statistic, p, alpha, effect / pooled_sd if pooled_sd else math.nan,
                      _z_sum(alpha, power) * se, _n_needed(alpha, power, drop, baseline.sd**2 + current.sd**2))


def two_proportions(baseline_passed: int, baseline_n: int, current_passed: int, current_n: int,
                    alpha: float = 0.05, power: float = 0.8, drop: float = 0.05) -> Comparison:
    _check(alpha, power, drop)
    if min(baseline_n, current_n) < 1 or not (0 <= baseline_passed <= baseline_n and 0 <= current_passed <= current_n):
        raise ValueError("two_proportions: need 0 <= passed <= n and n >= 1 in each arm")
    p0, p1 = baseline_passed / baseline_n, current_passed / current_n
    pooled = (baseline_passed + current_passed) / (baseline_n + current_n)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / baseline_n + 1 / current_n))
    if pooled_se == 0:
        raise ValueError("two_proportions: every item passed (or none did) in both arms; nothing to test")
    statistic = (p1 - p0) / pooled_se
    p = float(2 * scipy_stats.norm.sf(abs(statistic)))
    unpooled_se = math.sqrt(p0 * (1 - p0) / baseline_n + p1 * (1 - p1) / current_n)
    half = float(scipy_stats.norm.ppf(1 - alpha / 2)) * unpooled_se
    h = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))
    return Comparison("two_proportions", p0, p1, baseline_n, current_n, p1 - p0, p1 - p0 - half, p1 - p0 + half,
                      statistic, p, alpha, h, _z_sum(alpha, power) * pooled_se,
                      _n_needed(alpha, power, drop, 2 * pooled * (1 - pooled)))


def _check(alpha: float, power: float, drop: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1 or drop <= 0:
        raise ValueError("alpha and power must be in (0, 1) and drop > 0")


def _z_sum(alpha: float, power: float) -> float:
    return float(scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(power))


def _n_needed(alpha: float, power: float, drop: float, variance_sum: float) -> int:
    return max(2, math.ceil(_z_sum(alpha, power) ** 2 * variance_sum / drop**2))


# Verdicts of a paired comparison (the CI gate)
REGRESSED, PASSED, INSUFFICIENT = "REGRESSED", "PASS", "insufficient data"


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """One metric, current − baseline over the ids scored in both runs."""

    n: int
    baseline_mean: float  # NaN when n is 0
    current_mean: float
    delta: float  # mean paired difference, current − baseline
    ci_low: float  # 95% t interval of `delta`; NaN when n < 2
    ci_high: float
    p_worse: float | None  # one-sided p for "current is worse"; None when n < 2 or every difference is the same

    @property
    def constant_difference(self) -> bool:
        """Every pair differs by the same amount: no variance, so no t-test."""
        return self.n >= 2 and self.p_worse is None

    def verdict(self, alpha: float, min_delta: float) -> str:
        if self.n < 2:
            return INSUFFICIENT
        if not (self.delta < 0 and -self.delta >= min_delta):
            return PASSED
        # with a constant difference the drop is certain: the minimum delta alone decides
        return REGRESSED if self.p_worse is None or self.p_worse < alpha else PASSED


def paired_comparison(baseline: Mapping[str, float], current: Mapping[str, float]) -> PairedComparison:
    ids = sorted(baseline.keys() & current.keys())
    n = len(ids)
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan, None)
    before = np.array([baseline[i] for i in ids], dtype=np.float64)
    after = np.array([current[i] for i in ids], dtype=np.float64)
    diff = after - before
    delta = float(diff.mean())
    means = float(before.mean()), float(after.mean())
    if n < 2:
        return PairedComparison(n, *means, delta, math.nan, math.nan, None)
    if diff.max() == diff.min():
        return PairedComparison(n, *means, delta, delta, delta, None)
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * se
    return PairedComparison(n, *means, delta, delta - half, delta + half,
                            float(scipy_stats.t.cdf(delta / se, n - 1)))
