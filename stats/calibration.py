"""Can the judge be trusted? Per metric and judge version: how well its scores predict what users did, and how often
it agrees with reviewers.

- Outcome AUROC: the probability that a trace users were unhappy with (thumbs down, a low rating, an edit, a
  regeneration) got a lower score than a control trace, ties counting half; a trace's score is its lowest judged
  span. Controls are traces with positive feedback when there are at least `MIN_N` of them, otherwise judged traces
  without negative feedback. AUROC does not depend on how often each class was judged (feedback-triggered judging
  takes every negative trace, the sampler a share of the rest), only on judging being blind to the score within a
  class. Its 95% interval is DeLong's (DeLong, DeLong & Clarke-Pearson 1988, with Sun & Xu's midrank algorithm,
  2014): var = s²(V₁₀)/m + s²(V₀₁)/n over the structural components.
- Agreement with human labels (feedback with `labels`): the share of (span or trace, metric) verdicts where the
  judge's pass/fail equals the reviewer's, and Cohen's κ = (p_o − p_e)/(1 − p_e).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from tracejudge.processor.pdata.feedback import Feedback

from .store import Store

MIN_N = 10  # per class, before an AUROC is reported; and reviewer labels before agreement is judged


@dataclass(frozen=True)
class Auroc:
    value: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int


def auroc(positive: Sequence[float], negative: Sequence[float], level: float = 0.95) -> Auroc:
    """P(a positive's value > a negative's) + ½ P(tie), with DeLong's interval (clipped to [0, 1])."""
    x, y = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"AUROC needs at least 2 of each class (have {m} and {n})")
    combined = scipy_stats.rankdata(np.concatenate([x, y]))
    tx, ty = scipy_stats.rankdata(x), scipy_stats.rankdata(y)
    value = float((combined[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (combined[:m] - tx) / n  # per positive: the share of negatives below it
    v01 = 1.0 - (combined[m:] - ty) / m  # per negative: the share of positives above it
    se = math.sqrt(float(np.var(v10, ddof=1)) / m + float(np.var(v01, ddof=1)) / n)
    z = float(scipy_stats.norm.ppf(0.5 + level / 2))
    return Auroc(value, max(0.0, value - z * se), min(1.0, value + z * se), m, n)


@dataclass(frozen=True)
class Calibration:
    metric: str
    judge_version: str
    control: str  # what the unhappy traces are compared with
    outcome: Auroc | None  # None: fewer than MIN_N traces in a class
    n_unhappy: int
    n_control: int
    n_labels: int
    agreement: float | None  # share of reviewer labels the judge agrees with
    kappa: float | None

    @property
    def warning(self) -> str:
        """Why this judge's scores should not be trusted yet ("" when nothing is wrong)."""
        problems = []
        if self.outcome is None:
            problems.append(f"too little feedback to tell whether scores predict user outcomes ({self.n_unhappy} "
                            f"unhappy, {self.n_control} control traces; {MIN_N} of each needed)")
        elif self.outcome.ci_low <= 0.5:
            problems.append(f"scores do not predict user outcomes: AUROC {self.outcome.value:.2f} (95% CI "
                            f"{self.outcome.ci_low:.2f}-{self.outcome.ci_high:.2f} includes 0.5)")
        if self.kappa is not None and self.n_labels >= MIN_N and self.kappa < 0.2:
            problems.append(f"agrees with reviewers no better than chance (kappa {self.kappa:.2f}, "
                            f"n={self.n_labels})")
        return "; ".join(problems)


def calibrate(store: Store) -> list[Calibration]:
    """One Calibration per (metric, judge version) that has judged traces."""
    feedback = store.feedback()
    unhappy = {f.trace_id for f in feedback if f.negative}
    happy = {f.trace_id for f in feedback if f.positive} - unhappy
    scores: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for metric, version, trace, score in store.judged_traces():
        scores[(metric, version)][trace] = score
    labelled = [f for f in feedback if f.labels]
    found = []
    for (metric, version), by_trace in sorted(scores.items()):
        bad = [s for t, s in by_trace.items() if t in unhappy]
        good = [s for t, s in by_trace.items() if t in happy]
        control = "positive feedback"
        if len(good) < MIN_N:
            good, control = [s for t, s in by_trace.items() if t not in unhappy], "judged, no negative feedback"
        outcome = auroc(good, bad) if len(bad) >= MIN_N and len(good) >= MIN_N else None
        agreement, kappa, n_labels = _agreement(store, labelled, metric, version)
        found.append(Calibration(metric, version, control, outcome, len(bad), len(good), n_labels, agreement, kappa))
    return found


def _agreement(store: Store, labelled: Sequence[Feedback], metric: str, version: str
               ) -> tuple[float | None, float | None, int]:
    pairs = []  # (judge passed, reviewer passed)
    for record in labelled:
        judged = [e for e in store.trace_evaluations(record.trace_id)
                  if e.metric == metric and e.judge_version == version]
        on_span = [e for e in judged if e.span_id == record.span_id] if record.span_id else []
        judged = on_span or judged
        if not judged:
            continue
        verdict = all(e.passed for e in judged)  # a trace passes when every judged span does
        pairs += [(verdict, passed) for label_metric, passed in record.labels if label_metric == metric]
    if not pairs:
        return None, None, 0
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    judge_yes, human_yes = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    expected = judge_yes * human_yes + (1 - judge_yes) * (1 - human_yes)
    kappa = (observed - expected) / (1 - expected) if expected < 1 else None
    return observed, kappa, n
