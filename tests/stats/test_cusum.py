"""CUSUM against Montgomery's published ARL table, by seeded simulation of the real class."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tracejudge.stats.cusum import Cusum

# Montgomery, Introduction to Statistical Quality Control, Table 9.3: two-sided tabular CUSUM with k = 1/2
MONTGOMERY = {4.0: [168, 74.2, 26.6, 13.3, 8.38], 5.0: [465, 139, 38.0, 17.0, 10.4]}
SHIFTS = [0.0, 0.25, 0.5, 0.75, 1.0]


def run_length(chart: Cusum, rng: np.random.Generator, shift: float) -> int:
    while True:
        for x in rng.standard_normal(256) + shift:
            chart.update(float(x))
            if chart.alarm:
                return chart.n


@pytest.mark.parametrize("h", sorted(MONTGOMERY))
def test_average_run_lengths_match_montgomerys_table(h: float) -> None:
    rng = np.random.default_rng(20261130)
    for shift, published in zip(SHIFTS, MONTGOMERY[h], strict=True):
        runs = 2000 if shift == 0 else 1000
        lengths = []
        for _ in range(runs):
            chart = Cusum(k=0.5, h=h, mean=0.0, sd=1.0)
            lengths.append(run_length(chart, rng, shift))
        arl = float(np.mean(lengths))
        se = float(np.std(lengths, ddof=1)) / math.sqrt(runs)
        assert abs(arl - published) <= max(3 * se, 0.02 * published), (h, shift, arl, se, published)


def test_the_reference_is_frozen_after_the_warm_up() -> None:
    chart = Cusum(warmup=4)
    for x in (0.8, 0.9, 0.7, 0.8):
        chart.update(x)
    assert chart.ready and chart.mean == pytest.approx(0.8) and chart.sd == pytest.approx(np.std([.8, .9, .7, .8],
                                                                                                  ddof=1))
    for _ in range(3):
        chart.update(0.5)  # (0.5 - 0.8) / 0.0816 = -3.67 sd each
    assert chart.alarm == "down" and chart.n == 3 and chart.upper == 0.0


def test_a_constant_warm_up_does_not_make_the_next_score_infinitely_far() -> None:
    chart = Cusum(warmup=3, min_sd=0.05)
    for x in (1.0, 1.0, 1.0, 0.99):
        chart.update(x)
    assert chart.sd == 0.05 and chart.alarm is None and chart.get() == 0.0  # z = -0.2: inside k
    chart.update(0.7)  # z = -6
    assert chart.alarm == "down"


def test_state_round_trips_through_json_and_restart_keeps_the_reference() -> None:
    chart = Cusum(k=0.5, h=5, warmup=2)
    for x in (0.2, 0.4, 0.9, 0.95):
        chart.update(x)
    copy = Cusum(k=0.5, h=5, warmup=2)
    copy.restore(json.loads(json.dumps(chart.state())))
    for c in (chart, copy):
        c.update(1.0)
    assert copy.state() == chart.state() and chart.alarm == "up"
    chart.restart()
    assert (chart.alarm, chart.get(), chart.mean) == (None, 0.0, copy.mean)


def test_bad_tunables_are_refused() -> None:
    with pytest.raises(ValueError, match="sd"):
        Cusum(mean=0.5)
    with pytest.raises(ValueError, match="h > 0"):
        Cusum(h=0)
