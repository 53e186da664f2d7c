"""How good a judge is on labelled records: AUROC, balanced accuracy and F1 at a threshold, calibration error.

Conventions: `labels` are 1 for a bad response (hallucinated, unfaithful) and 0 for a good one, as in the labelled
sets; `scores` are the judge's, 1 = good. So a judge separates the classes when bad responses score low. Pure
Python: the benchmark and the training script share it, and serving does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """P(a bad response scores lower than a good one), ties counting one half (the Mann-Whitney U statistic)."""
    _check(scores, labels)
    ranked = sorted(zip(scores, labels, strict=True))
    bad = sum(labels)
    good = len(labels) - bad
    if not bad or not good:
        raise ValueError("AUROC needs both classes")
    # Sum of the ranks of the good responses (average ranks for ties), from the lowest score up.
    rank_sum_good, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2
        rank_sum_good += average_rank * sum(1 for _, label in ranked[i:j] if label == 0)
        i = j
    u_good = rank_sum_good - good * (good + 1) / 2  # pairs (good, bad) with the good one scoring higher
    return u_good / (good * bad)


@dataclass(frozen=True, slots=True)
class AtThreshold:
    """Detecting bad responses by `score < threshold`."""

    balanced_accuracy: float
    f1: float  # of the "bad" class
    precision: float
    recall: float


def at_threshold(scores: Sequence[float], labels: Sequence[int], threshold: float) -> AtThreshold:
    _check(scores, labels)
    flagged = [score < threshold for score in scores]
    tp = sum(1 for f, label in zip(flagged, labels, strict=True) if f and label == 1)
    fp = sum(1 for f, label in zip(flagged, labels, strict=True) if f and label == 0)
    fn = sum(1 for f, label in zip(flagged, labels, strict=True) if not f and label == 1)
    tn = len(labels) - tp - fp - fn
    recall = tp / (tp + fn) if tp + fn else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return AtThreshold((recall + specificity) / 2, f1, precision, recall)


def expected_calibration_error(probabilities: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    """ECE of `probabilities` that a response is good (1 - label), in `bins` equal-width bins: the mean gap between
    the predicted probability and the observed share of good responses, weighted by the bin's size."""
    _check(probabilities, labels)
    totals = [[0, 0.0, 0] for _ in range(bins)]  # count, sum of probabilities, good responses
    for p, label in zip(probabilities, labels, strict=True):
        b = min(bins - 1, int(p * bins))
        totals[b][0] += 1
        totals[b][1] += p
        totals[b][2] += 1 - label
    n = len(labels)
    return sum(abs(total_p / count - good / count) * count / n for count, total_p, good in totals if count)


def _check(scores: Sequence[float], labels: Sequence[int]) -> None:
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    if not scores:
        raise ValueError("no records")
    if any(label not in (0, 1) for label in labels):
        raise ValueError("labels must be 0 (good) or 1 (bad)")
