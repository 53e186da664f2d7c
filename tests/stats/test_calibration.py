"""Calibration: the AUROC equals the Mann-Whitney statistic, DeLong's variance equals its definition and its
interval covers the true AUROC as often as it says; on a real store, a judge whose low scores go with thumbs-down
is predictive, a judge scoring at random is flagged, and agreement with reviewers is counted per label."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tests.stats.test_monitor import stream
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.stats.calibration import MIN_N, auroc, calibrate
from tracejudge.stats.store import StatsStore


def test_auroc_is_the_mann_whitney_statistic_ties_counting_half() -> None:
    rng = np.random.default_rng(7)
    good, bad = np.round(rng.normal(0.7, 0.2, 60), 1), np.round(rng.normal(0.5, 0.2, 40), 1)  # many ties
    u = scipy_stats.mannwhitneyu(good, bad).statistic
    assert auroc(list(good), list(bad)).value == pytest.approx(u / (60 * 40), abs=1e-12)


def test_the_delong_variance_is_the_variance_of_its_structural_components() -> None:
    rng = np.random.default_rng(3)
    x, y = np.round(rng.normal(1, 1, 30), 1), np.round(rng.normal(0, 1, 20), 1)
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])  # O(mn), straight from the definition
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = math.sqrt(np.var(v10, ddof=1) / 30 + np.var(v01, ddof=1) / 20)
    result = auroc(list(x), list(y))
    assert result.value == pytest.approx(psi.mean())
    assert (result.ci_high - result.ci_low) / 2 == pytest.approx(1.959964 * se, rel=1e-5)


def test_the_interval_covers_the_true_auroc_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    d = 1.0
    truth = scipy_stats.norm.cdf(d / math.sqrt(2))  # binormal, unit variances: AUROC = Φ(d/√2) ≈ 0.760
    covered = sum(r.ci_low <= truth <= r.ci_high for r in
                  (auroc(list(rng.normal(d, 1, 60)), list(rng.normal(0, 1, 40))) for _ in range(600)))
    assert 0.92 <= covered / 600 <= 0.975


def judged(store: StatsStore, scores: list[float], seed: int = 0) -> list[str]:
    """Stores one judged span per score; returns the trace ids."""
    evaluations = [dataclasses.replace(e, score=s, passed=s >= 0.5)
                   for e, s in zip(stream(len(scores), seed=seed), scores, strict=True)]
    store.add(evaluations)
    return [e.trace_id for e in evaluations]


def test_a_judge_whose_low_scores_go_with_thumbs_down_is_predictive(tmp_path: Path) -> None:
    rng = random.Random(5)
    store = StatsStore(tmp_path / "stats.db")
    scores = [rng.uniform(0, 0.6) for _ in range(30)] + [rng.uniform(0.3, 1) for _ in range(90)]
    traces = judged(store, scores)
    store.save_feedback([Feedback(t, thumbs=-1).identified() for t in traces[:30]])
    store.save_feedback([Feedback(t, regenerated=True).identified() for t in traces[:5]])  # the same traces
    (result,) = calibrate(store)
    assert (result.metric, result.judge_version, result.n_unhappy, result.n_control) == ("faithfulness", "1", 30, 90)
    assert result.control == "judged, no negative feedback"
    assert result.outcome is not None and result.outcome.value > 0.85 and result.outcome.ci_low > 0.5
    assert result.warning == ""
    # explicit praise becomes the control group once there is enough of it
    store.save_feedback([Feedback(t, rating=1.0).identified() for t in traces[30:30 + MIN_N]])
    (with_praise,) = calibrate(store)
    assert with_praise.control == "positive feedback" and with_praise.n_control == MIN_N


def test_a_judge_scoring_at_random_is_flagged(tmp_path: Path) -> None:
    rng = random.Random(9)
    store = StatsStore(tmp_path / "stats.db")
    traces = judged(store, [rng.random() for _ in range(200)])
    store.save_feedback([Feedback(t, thumbs=-1).identified() for t in rng.sample(traces, 25)])
    (result,) = calibrate(store)
    assert result.outcome is not None and result.outcome.ci_low <= 0.5 <= result.outcome.ci_high
    assert "do not predict user outcomes" in result.warning
    few = StatsStore(tmp_path / "few.db")
    few_traces = judged(few, [0.1, 0.9, 0.8])
    few.save_feedback([Feedback(few_traces[0], thumbs=-1).identified()])
    (small,) = calibrate(few)
    assert small.outcome is None and "too little feedback" in small.warning


def test_agreement_with_reviewers_is_counted_per_label_with_kappa(tmp_path: Path) -> None:
    store = StatsStore(tmp_path / "stats.db")
    traces = judged(store, [0.9, 0.9, 0.2, 0.2, 0.9, 0.2])  # judge: pass pass fail fail pass fail
    reviewer = [True, True, False, True, False, False]  # agrees on 4 of 6
    store.save_feedback([Feedback(t, source="reviewer", labels=(("faithfulness", ok), ("relevancy", True)))
                         .identified() for t, ok in zip(traces, reviewer, strict=True)])
    (result,) = calibrate(store)
    assert result.n_labels == 6 and result.agreement == pytest.approx(4 / 6)
    # p_o = 2/3, judge yes 1/2, reviewer yes 1/2: p_e = 1/2, κ = (2/3 - 1/2)/(1/2) = 1/3
    assert result.kappa == pytest.approx(1 / 3)
