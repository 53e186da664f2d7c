"""The mixture SPRT under continuous monitoring: A/A false positives stay under alpha where a repeated z-test's do
not; a real drop is found."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from tracejudge.stats.msprt import MixtureSprt

LOOKS = 10_000


def test_looking_after_every_observation_keeps_false_positives_under_alpha() -> None:
    rng = np.random.default_rng(20261130)
    replications, alpha = 100, 0.05
    always_valid = naive = 0
    z_crit = stats.norm.ppf(1 - alpha / 2)
    for _ in range(replications):
        control, treatment = rng.normal(0.7, 0.2, LOOKS), rng.normal(0.7, 0.2, LOOKS)
        test = MixtureSprt(tau=0.05, alpha=alpha)
        for c, t in zip(control.tolist(), treatment.tolist(), strict=True):
            test.update(c, "control")
            test.update(t, "treatment")
            if test.rejected:
                break
        always_valid += test.rejected
        # the naive analyst: a fixed-n z-test after every pair, from the 10th on
        n = np.arange(1, LOOKS + 1)
        diff = np.cumsum(treatment) / n - np.cumsum(control) / n
        z = diff / np.sqrt(2 * 0.2**2 / n)
        naive += bool(np.any(np.abs(z[9:]) > z_crit))
    assert always_valid / replications <= alpha
    assert naive / replications >= 0.5  # ≈ 0.65 in theory at 10,000 looks


def test_a_real_drop_is_found_and_its_direction_named() -> None:
    rng = np.random.default_rng(5)
    test = MixtureSprt(tau=0.05)
    n = 0
    while not test.rejected and n < LOOKS:
        test.update(float(rng.normal(0.8, 0.2)), "control")
        test.update(float(rng.normal(0.75, 0.2)), "treatment")
        n += 1
    assert test.rejected and test.direction == "down" and n < 2000
    assert test.get() == pytest.approx(-0.05, abs=0.03)


def test_state_round_trips_through_json_and_arms_are_checked() -> None:
    a, b = MixtureSprt(min_n=2), MixtureSprt(min_n=2)
    for x in (0.1, 0.5, 0.9):
        a.update(x, "control")
        a.update(x / 2, "treatment")
    b.restore(json.loads(json.dumps(a.state())))
    a.update(0.3, "treatment")
    b.update(0.3, "treatment")
    assert a.state() == b.state() and a.p_value < 1
    with pytest.raises(ValueError, match="arm must be"):
        a.update(0.1, "canary")
