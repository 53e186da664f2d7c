"""Streaming estimators against numpy on the same data; the weighted mean against a biased sample."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from tracejudge.stats import cusum, streaming
from tracejudge.stats.streaming import Moments, Quantiles, WeightedMean


def test_docstring_examples_hold() -> None:
    for module in (streaming, cusum):
        assert doctest.testmod(module).failed == 0


def test_equal_weights_give_the_sample_mean_and_its_variance() -> None:
    x = np.random.default_rng(1).beta(5, 2, size=500)
    m, moments = WeightedMean(), Moments()
    for value in x:
        m.update(float(value))
        moments.update(float(value))
    assert m.get() == pytest.approx(x.mean(), abs=1e-12)
    assert m.variance == pytest.approx(x.var(ddof=1) / len(x), rel=1e-9)
    assert moments.get() == pytest.approx(x.mean(), abs=1e-12)
    assert moments.variance == pytest.approx(x.var(ddof=1), rel=1e-9)


def test_weighted_mean_and_variance_follow_the_hajek_formulas() -> None:
    rng = np.random.default_rng(2)
    x, p = rng.random(300), rng.uniform(0.05, 1.0, 300)
    m = WeightedMean()
    for value, probability in zip(x, p, strict=True):
        m.update(float(value), float(probability))
    w = 1 / p
    mean = (w * x).sum() / w.sum()
    assert m.get() == pytest.approx(mean, rel=1e-12)
    assert m.variance == pytest.approx(len(x) / (len(x) - 1) * (w**2 * (x - mean) ** 2).sum() / w.sum() ** 2, rel=1e-9)
    assert m.population == pytest.approx(w.sum())


def test_weights_undo_a_targeted_sample() -> None:
    """Low scores sampled at 1.0, the rest at 0.1 (a targeted rule and a uniform floor): the plain mean of the sample
    is far off, the weighted one covers the population mean."""
    rng = np.random.default_rng(3)
    population = rng.beta(6, 2, size=20_000)
    probability = np.where(population < 0.5, 1.0, 0.1)
    taken = rng.random(population.size) < probability
    m, plain = WeightedMean(), Moments()
    for value, pi in zip(population[taken], probability[taken], strict=True):
        m.update(float(value), float(pi))
        plain.update(float(value))
    low, high = m.ci95
    assert low <= population.mean() <= high
    assert abs(plain.get() - population.mean()) > 0.05
    assert m.population == pytest.approx(population.size, rel=0.05)


def test_quantiles_are_within_their_relative_accuracy() -> None:
    x = np.random.default_rng(4).lognormal(5, 1, size=5000)
    q = Quantiles(accuracy=0.01)
    for value in x:
        q.update(float(value))
    for level in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = float(np.quantile(x, level, method="lower"))
        assert abs(q.get(level) - exact) <= 0.01 * exact, level
    assert len(q.buckets) < 700  # bounded by the value range, not the count
    zero = Quantiles()
    for value in (0.0, 0.0, 3.0):
        zero.update(value)
    assert zero.get(0.5) == 0.0 and math.isnan(Quantiles().get(0.5))


def test_state_round_trips_through_json() -> None:
    for fresh, feed in ((WeightedMean, lambda o, x: o.update(x, 0.5)), (Moments, lambda o, x: o.update(x)),
                        (Quantiles, lambda o, x: o.update(x))):
        a, b = fresh(), fresh()
        for x in (0.1, 0.7, 0.4):
            feed(a, x)
        b.restore(json.loads(json.dumps(a.state())))
        feed(a, 0.9)
        feed(b, 0.9)
        assert a.state() == b.state()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="inclusion probability"):
        WeightedMean().update(0.5, 0.0)
    with pytest.raises(ValueError, match="q must be"):
        Quantiles().get(1.5)
