"""How the embedded judge's signals (`embedded_signals.INPUTS`) become the log-odds that a response is unsupported:
a logistic regression over the first few (the first model's calibration), or a small ensemble of regression trees
over all of them — the learned, non-linear combination of the cross-encoder's logit with the lexical signals (the
model card's "learned combination" lever). Evaluated with numpy in serving; trees are fitted by
`training/boosting.py`. A calibration document in model.json names its inputs, which must be the signals' first
ones.

Each tree is stored as flat arrays: node i splits on `feature[i]` at `threshold[i]` (x <= threshold goes to
`left[i]`, else `right[i]`) or, where `feature[i]` is -1, is a leaf worth `value[i]`. The ensemble's output is
`base + Σ tree(x)`, a log-odds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Tree:
    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]

    def __call__(self, x: Array) -> Array:
        feature, threshold = np.asarray(self.feature), np.asarray(self.threshold)
        left, right, value = np.asarray(self.left), np.asarray(self.right), np.asarray(self.value)
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            inner = feature[node] >= 0
            if not inner.any():
                return np.asarray(value[node], dtype=np.float64)
            at = node[inner]
            goes_left = x[rows[inner], feature[at]] <= threshold[at]
            node[inner] = np.where(goes_left, left[at], right[at])


@dataclass(frozen=True)
class TreeEnsemble:
    inputs: tuple[str, ...]  # the signal columns the trees read, by name (x's first len(inputs) columns)
    base: float
    trees: tuple[Tree, ...]

    def log_odds(self, x: Array) -> Array:
        x = np.asarray(x, dtype=np.float64)[:, :len(self.inputs)]
        out = np.full(len(x), self.base)
        for tree in self.trees:
            out += tree(x)
        return out

    def document(self) -> dict[str, Any]:
        return {"inputs": list(self.inputs), "base": self.base,
                "trees": [[list(t.feature), list(t.threshold), list(t.left), list(t.right), list(t.value)]
                          for t in self.trees]}

    @classmethod
    def from_document(cls, raw: dict[str, Any]) -> TreeEnsemble:
        trees = tuple(Tree(tuple(int(v) for v in f), tuple(map(float, th)), tuple(int(v) for v in le),
                           tuple(int(v) for v in ri), tuple(map(float, va))) for f, th, le, ri, va in raw["trees"])
        return cls(tuple(raw["inputs"]), float(raw["base"]), trees)


@dataclass(frozen=True)
class Logistic:
    inputs: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def log_odds(self, x: Array) -> Array:
        out: Array = np.asarray(x, dtype=np.float64)[:, :len(self.weights)] @ np.asarray(self.weights) + self.bias
        return out


def combiner(document: dict[str, Any], signals: Sequence[str]) -> TreeEnsemble | Logistic:
    """The combiner a calibration document describes; ValueError if its inputs are not the first of `signals`."""
    found: TreeEnsemble | Logistic
    if "trees" in document:
        found = TreeEnsemble.from_document(document)
    else:
        weights = tuple(map(float, document["weights"]))
        found = Logistic(tuple(document.get("inputs", signals[:len(weights)])), weights, float(document["bias"]))
    if tuple(found.inputs) != tuple(signals[:len(found.inputs)]):
        raise ValueError(f"the calibration reads {list(found.inputs)}, not the first of the signals this version "
                         f"computes ({list(signals)})")
    return found
