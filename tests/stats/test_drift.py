"""PSI drift: the window-aware threshold alarms at about alpha with no change, the fixed 0.1 rule does not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from tracejudge.stats.drift import Psi, psi, threshold


def test_psi_is_the_symmetrised_divergence_of_the_smoothed_shares() -> None:
    reference, current = [30, 50, 20], [10, 40, 50]
    e = (np.array(reference) + 0.5) / 101.5
    a = (np.array(current) + 0.5) / 101.5
    assert psi(reference, current) == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-12)
    assert psi(reference, reference) == 0.0


def test_no_change_alarms_at_about_alpha_while_the_fixed_rule_alarms_often() -> None:
    rng = np.random.default_rng(20261130)
    alpha, window, runs = 0.05, 100, 400
    alarms = fixed_rule = 0
    for _ in range(runs):
        detector = Psi(bins=10, window=window, alpha=alpha)
        for x in rng.lognormal(3, 1, 2 * window):
            detector.update(float(x))
        alarms += detector.alarm
        fixed_rule += detector.get() > 0.1
    assert alarms / runs <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / runs)
    assert fixed_rule / runs >= 0.3
    assert threshold(10, 100, 100, 0.05) == pytest.approx(0.02 * stats.chi2.ppf(0.95, 9))


def test_a_shift_is_detected() -> None:
    rng = np.random.default_rng(2)
    detector = Psi(bins=10, window=200, alpha=0.01)
    for x in rng.normal(0, 1, 200):
        detector.update(float(x))
    for x in rng.normal(0.5, 1, 200):
        detector.update(float(x))
    assert detector.alarm and detector.windows == 1


def test_discrete_and_constant_references_still_bin() -> None:
    detector = Psi(bins=10, window=40, alpha=0.01)
    for _ in range(40):
        detector.update(1.0)  # every score perfect
    assert detector.edges and len(detector.reference) == 3
    for _ in range(40):
        detector.update(0.0)
    assert detector.alarm


def test_state_round_trips_through_json() -> None:
    a, b = Psi(bins=4, window=20), Psi(bins=4, window=20)
    for x in range(30):
        a.update(float(x % 7))
    b.restore(json.loads(json.dumps(a.state())))
    for x in range(10):
        a.update(float(x))
        b.update(float(x))
    assert a.state() == b.state() and a.windows == 1
