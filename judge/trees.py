"""A small ensemble of regression trees over a handful of signals: the embedded judge's learned, non-linear
combination of the cross-encoder's logit with the lexical features (the model card's "learned combination" lever).
Evaluated with numpy in serving; fitted by `training/boosting.py`.

Each tree is stored as flat arrays: node i splits on `feature[i]` at `threshold[i]` (x <= threshold goes to
`left[i]`, else `right[i]`) or, where `feature[i]` is -1, is a leaf worth `value[i]`. The ensemble's output is
`base + Σ tree(x)`, a log-odds.
"""

from __future__ import annotations

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
