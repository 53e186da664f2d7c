"""Version comparison against scipy on the same data, and its power arithmetic against a seeded simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tracejudge.stats.compare import Summary, two_proportions, welch
from tracejudge.stats.streaming import Moments, WeightedMean


def moments(values: np.ndarray) -> Moments:
    m = Moments()
    for x in values:
        m.update(float(x))
    return m


def test_welch_equals_scipy() -> None:
    rng = np.random.default_rng(11)
    baseline, current = rng.beta(8, 2, 137), rng.beta(6, 3, 58)
    result = welch(Summary.of(moments(baseline)), Summary.of(moments(current)), alpha=0.05)
    oracle = stats.ttest_ind(current, baseline, equal_var=False)
    interval = oracle.confidence_interval(0.95)
    assert result.statistic == pytest.approx(oracle.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(oracle.pvalue, abs=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high), abs=1e-9)
    assert result.effect == pytest.approx(current.mean() - baseline.mean(), abs=1e-12)
    assert (result.n_baseline, result.n_current) == (137, 58)
    assert result.regressed and not result.improved


def test_equal_weights_leave_welch_unchanged() -> None:
    rng = np.random.default_rng(12)
    a, b = rng.random(40), rng.random(50)
    weighted = []
    for values in (a, b):
        m = WeightedMean()
        for x in values:
            m.update(float(x), 0.25)
        weighted.append(Summary.of(m))
    plain = welch(Summary.of(moments(a)), Summary.of(moments(b)))
    assert welch(*weighted).p_value == pytest.approx(plain.p_value, abs=1e-12)


def test_two_proportions_equals_the_uncorrected_chi_square_test() -> None:
    result = two_proportions(180, 200, 150, 190)
    chi2, p, _, _ = stats.chi2_contingency([[180, 20], [150, 40]], correction=False)
    assert result.p_value == pytest.approx(p, abs=1e-9)
    assert result.statistic**2 == pytest.approx(chi2, abs=1e-9)
    assert result.effect == pytest.approx(150 / 190 - 0.9)
    z = stats.norm.ppf(0.975)
    p0, p1 = 0.9, 150 / 190
    half = z * np.sqrt(p0 * (1 - p0) / 200 + p1 * (1 - p1) / 190)
    assert (result.ci_low, result.ci_high) == pytest.approx((p1 - p0 - half, p1 - p0 + half), abs=1e-12)


def test_the_n_needed_for_a_drop_detects_it_at_the_stated_power() -> None:
    rng = np.random.default_rng(13)
    sd, drop = 0.2, 0.05
    plan = welch(Summary(0.8, sd**2 / 100, sd, 100), Summary(0.8, sd**2 / 100, sd, 100), drop=drop, power=0.8)
    n = plan.n_needed_per_arm
    assert n == pytest.approx(2 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 * sd**2 / drop**2, abs=1)
    detected = 0
    for _ in range(400):
        baseline, current = rng.normal(0.8, sd, n), rng.normal(0.8 - drop, sd, n)
        detected += welch(Summary.of(moments(baseline)), Summary.of(moments(current))).regressed
    assert 0.74 <= detected / 400 <= 0.86
    # and at that n, the minimum detectable drop is the configured one
    at_n = welch(Summary(0.8, sd**2 / n, sd, n), Summary(0.8, sd**2 / n, sd, n), drop=drop)
    assert at_n.minimum_detectable_drop == pytest.approx(drop, rel=0.01)


def test_comparisons_refuse_what_they_cannot_test() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        welch(Summary(0.5, 0.01, 0.1, 1), Summary(0.5, 0.01, 0.1, 5))
    with pytest.raises(ValueError, match="constant"):
        welch(Summary(1.0, 0.0, 0.0, 5), Summary(1.0, 0.0, 0.0, 5))
    with pytest.raises(ValueError, match="passed"):
        two_proportions(5, 4, 1, 4)
    with pytest.raises(ValueError, match="nothing to test"):
        two_proportions(4, 4, 9, 9)
