"""Fitting an adaptation on a user's labels, and the rule that decides whether it may be installed.

1. Labels are split by group (a trace, a record's group), seeded: `holdout` of the groups are kept apart; nothing
   below sees them until the end.
2. Candidates — a head over the metric's inputs (three L2 strengths), and with at least `min_adapter_labels` labels
   an adapter over the embeddings as well (three more) — are scored by 5-fold grouped cross-validation on the rest;
   the best by AUROC is refitted on all of it.
3. On the held-out labels: AUROC and balanced accuracy (threshold 0.5) of the current judge and of the adapted one,
   each with a 95% percentile bootstrap interval (2,000 resamples of the held-out items), and the interval of the
   paired difference in AUROC.

**The rule**: the adaptation is installable only if its held-out AUROC is above the current judge's, with at least
MIN_PER_CLASS good and bad labels held out; otherwise it is refused and the report says why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .adaptation import ADAPTER, HEAD, Adaptation, Head
from .embedded_model import EmbeddedModel
from .embedded_signals import INPUTS, Array, Item, base_good, signals

MIN_PER_CLASS = 10  # good and bad labels, in the held-out share and in the rest
HEAD_L2 = (1e-4, 1e-3, 1e-2)
ADAPTER_L2 = (1e-2, 1e-1, 1.0)
FOLDS = 5
RESAMPLES = 2000


@dataclass(frozen=True)
class Labelled:
    item: Item
    label: int  # 1 = bad, as in the labelled sets
    group: str  # labels of one group stay on one side of the split (a trace, a document)
    source: str  # reviewer | feedback | file


@dataclass
class Outcome:
    report: dict[str, Any]
    adaptation: Adaptation | None  # None: refused (report["decision"] says why)


def judgeable(metric: str, item: Item) -> bool:
    """Whether the embedded judge scores `item` for `metric` at all (else serving marks it unjudged)."""
    needed = (item.context, item.response) if metric == "faithfulness" else (item.query, item.response)
    return all(text.strip() for text in needed)


def _fold(seed: int, group: str, folds: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % folds


def split(labelled: Sequence[Labelled], holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(indices to adapt on, indices held out): about `holdout` of the groups held out, by a seeded hash."""
    held = [_fold(seed, x.group, 10_000) / 10_000 < holdout for x in labelled]
    return [i for i, h in enumerate(held) if not h], [i for i, h in enumerate(held) if h]


def auroc_of(good: Array, labels: Array) -> float:
    """P(a bad item scores lower than a good one), ties one half (labels: 1 = bad)."""
    ranks = rankdata(good)
    n_good = float((labels == 0).sum())
    n_bad = len(labels) - n_good
    return float((ranks[labels == 0].sum() - n_good * (n_good + 1) / 2) / (n_good * n_bad))


def balanced_accuracy(good: Array, labels: Array, threshold: float = 0.5) -> float:
    flagged = good < threshold
    return float((flagged[labels == 1].mean() + (~flagged[labels == 0]).mean()) / 2)


def _candidates(n: int, min_adapter_labels: int) -> list[tuple[str, float]]:
    return [(HEAD, l2) for l2 in HEAD_L2] + ([(ADAPTER, l2) for l2 in ADAPTER_L2] if n >= min_adapter_labels else [])


def _columns(kind: str, metric: str, x: Array) -> Array:
    return x if kind == ADAPTER else x[:, :len(INPUTS[metric])]


def choose(metric: str, x: Array, labels: Array, groups: Sequence[str], seed: int, min_adapter_labels: int
           ) -> tuple[Head, dict[str, float]] | None:
    """The candidate with the best grouped cross-validated AUROC, refitted on everything given; None when no
    candidate can be cross-validated (the groups are too few to leave both classes in every fold's training)."""
    fold = np.array([_fold(seed + 1, g, FOLDS) for g in groups])
    scores: dict[str, float] = {}
    for kind, l2 in _candidates(len(labels), min_adapter_labels):
        out = np.zeros(len(labels))
        usable = True
        for k in range(FOLDS):
            train, test = fold != k, fold == k
            if not test.any():
                continue
            if len(set(labels[train].tolist())) < 2:
                usable = False
                break
            head = Head.fitted(kind, _columns(kind, metric, x[train]), 1.0 - labels[train], l2)
            out[test] = head.good(x[test])
        if usable:
            scores[f"{kind} l2={l2:g}"] = round(auroc_of(out, labels), 4)
    if not scores:
        return None
    # ties: the simpler head (a head before an adapter, then the stronger L2)
    best = max(scores, key=lambda name: (scores[name], name.startswith(HEAD), float(name.split(" l2=")[1])))
    kind, l2 = best.split(" l2=")[0], float(best.split(" l2=")[1])
    return Head.fitted(kind, _columns(kind, metric, x), 1.0 - labels, l2), scores


def _interval(values: Sequence[float]) -> list[float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def compare(before: Array, after: Array, labels: Array, seed: int) -> dict[str, Any]:
    """Held-out AUROC and balanced accuracy of both, with percentile bootstrap intervals (resampling items, both
    classes kept in every resample), and the interval of the paired AUROC difference."""
    rng = np.random.default_rng(seed)
    good, bad = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    samples: dict[str, list[float]] = {"before": [], "after": [], "difference": [], "before_ba": [], "after_ba": []}
    for _ in range(RESAMPLES):
        pick = np.concatenate([rng.choice(good, len(good)), rng.choice(bad, len(bad))])
        a, b = auroc_of(before[pick], labels[pick]), auroc_of(after[pick], labels[pick])
        samples["before"].append(a)
        samples["after"].append(b)
        samples["difference"].append(b - a)
        samples["before_ba"].append(balanced_accuracy(before[pick], labels[pick]))
        samples["after_ba"].append(balanced_accuracy(after[pick], labels[pick]))
    return {
        "before": {"auroc": round(auroc_of(before, labels), 4), "auroc_ci95": _interval(samples["before"]),
                   "balanced_accuracy": round(balanced_accuracy(before, labels), 4),
                   "balanced_accuracy_ci95": _interval(samples["before_ba"])},
        "after": {"auroc": round(auroc_of(after, labels), 4), "auroc_ci95": _interval(samples["after"]),
                  "balanced_accuracy": round(balanced_accuracy(after, labels), 4),
                  "balanced_accuracy_ci95": _interval(samples["after_ba"])},
        "auroc_difference_ci95": _interval(samples["difference"]),
    }


def current_good(model: EmbeddedModel, metric: str, x: Array, current: Adaptation | None) -> Array:
    """P(good) of the judge as configured now: the current adaptation's head for `metric`, else the shipped one."""
    if current is not None and metric in current.heads:
        return current.heads[metric].good(x)
    return base_good(model, metric, x)


def fit(model: EmbeddedModel, base: str, metric: str, labelled: Sequence[Labelled], current: Adaptation | None,
        holdout: float = 0.3, seed: int = 20261204, min_adapter_labels: int = 200) -> Outcome:
    """An adaptation of `current` (or of the shipped judge) whose `metric` head is refitted on `labelled` (items
    the judge would not score for `metric` are left out and counted)."""
    usable = [x for x in labelled if judgeable(metric, x.item)]
    labels = np.array([x.label for x in usable], dtype=np.float64)
    adapt, held = split(usable, holdout, seed)
    report: dict[str, Any] = {
        "metric": metric, "base": base, "current": current.version if current else base, "seed": seed,
        "holdout": holdout, "labels": {"adapt": _counts(labels[adapt]), "held_out": _counts(labels[held])},
        "sources": _sources(usable), "not judgeable (left out)": len(labelled) - len(usable)}
    short = [f"{name}: {counts['good']} good and {counts['bad']} bad labels"
             for name, counts in report["labels"].items() if min(counts["good"], counts["bad"]) < MIN_PER_CLASS]
    if short:
        return _refused(report, f"too few labels to adapt and check ({'; '.join(short)}; at least {MIN_PER_CLASS} "
                                "of each class are needed on each side)")
    x = signals(model, metric, [x.item for x in usable], embeddings=True)
    chosen = choose(metric, x[adapt], labels[adapt], [usable[i].group for i in adapt], seed, min_adapter_labels)
    if chosen is None:
        return _refused(report, f"the labels to adapt on come from too few groups (traces, records' `group`) to "
                                f"cross-validate over {FOLDS} folds with both classes in each")
    head, cross_validated = chosen
    report["candidates (grouped cross-validated AUROC on the adapt share)"] = cross_validated
    report["chosen"] = {"kind": head.kind, "l2": head.l2}
    report["held_out"] = compare(current_good(model, metric, x[held], current), head.good(x[held]), labels[held],
                                 seed)
    before, after = report["held_out"]["before"]["auroc"], report["held_out"]["after"]["auroc"]
    if after <= before:
        return _refused(report, f"the adapted judge's held-out AUROC {after:.4f} is not above the current judge's "
                                f"{before:.4f}: nothing installed")
    adaptation = Adaptation.create(base, {**(current.heads if current else {}), metric: head}, report)
    report["decision"] = f"installable as {adaptation.version}: held-out AUROC {before:.4f} -> {after:.4f}"
    return Outcome(report, adaptation)


def _refused(report: dict[str, Any], reason: str) -> Outcome:
    return Outcome({**report, "decision": f"refused: {reason}"}, None)


def _counts(labels: Array) -> dict[str, int]:
    return {"good": int((labels == 0).sum()), "bad": int((labels == 1).sum())}


def _sources(labelled: Sequence[Labelled]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for x in labelled:
        counts[x.source] = counts.get(x.source, 0) + 1
    return dict(sorted(counts.items()))
