"""Judge quality metrics against values worked out by hand and against their definitions."""

from __future__ import annotations

import itertools
import random

import pytest

from tracejudge.judge.quality import at_threshold, auroc, expected_calibration_error


def pairwise_auroc(scores: list[float], labels: list[int]) -> float:
    """The definition: over every (good, bad) pair, 1 if the good one scores higher, 1/2 if tied."""
    good = [s for s, label in zip(scores, labels, strict=True) if label == 0]
    bad = [s for s, label in zip(scores, labels, strict=True) if label == 1]
    wins = sum(1.0 if g > b else 0.5 if g == b else 0.0 for g, b in itertools.product(good, bad))
    return wins / (len(good) * len(bad))


def test_auroc_is_one_for_perfect_separation_one_half_for_ties_and_zero_when_inverted() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 1.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [0, 0, 1, 1]) == 0.5
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    assert auroc([0.9, 0.3, 0.4, 0.1], [0, 0, 1, 1]) == 0.75  # 3 of the 4 (good, bad) pairs in order


def test_auroc_matches_the_pairwise_definition_with_ties() -> None:
    rng = random.Random(5)
    for _ in range(20):
        labels = [rng.randint(0, 1) for _ in range(60)]
        labels[:2] = [0, 1]
        scores = [round(rng.random(), 1) for _ in labels]  # coarse: many ties
        assert auroc(scores, labels) == pytest.approx(pairwise_auroc(scores, labels), abs=1e-12)


def test_threshold_metrics_detect_bad_responses_by_low_scores() -> None:
    result = at_threshold([0.9, 0.6, 0.4, 0.2, 0.1], [0, 1, 0, 1, 1], threshold=0.5)
    # flagged (< 0.5): 0.4 (good), 0.2, 0.1 (bad): tp 2, fp 1, fn 1 (0.6), tn 1
    assert (result.precision, result.recall) == (2 / 3, 2 / 3)
    assert result.f1 == pytest.approx(2 / 3)
    assert result.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_ece_is_zero_when_probabilities_match_frequencies_and_large_when_overconfident() -> None:
    labels = [0] * 8 + [1] * 2  # 80 % good
    assert expected_calibration_error([0.8] * 10, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error([0.99] * 10, labels) == pytest.approx(0.19)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="2 scores for 1 labels"):
        at_threshold([0.1, 0.2], [0], 0.5)
