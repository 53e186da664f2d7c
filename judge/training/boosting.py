"""Gradient-boosted trees for the logistic loss, in numpy (Newton steps, L2 on leaf values, splits chosen among
quantile cuts of each input, as histogram GBMs do): fits the `combiners.TreeEnsemble` that combines the embedded judge's
signals. Deterministic: no sampling of rows or columns.

Reference: Chen & Guestrin, "XGBoost" (KDD 2016), eq. 5–7: a leaf is worth −G/(H+λ) and a split gains
G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ), with G and H the sums of the loss's first and second derivatives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..combiners import Array, Tree, TreeEnsemble
from .calibrate import sigmoid

CUTS = 64  # candidate thresholds per input


def fit_trees(x: Array, y: Array, names: Sequence[str], weight: Array | None = None, *, rounds: int = 200,
              depth: int = 3, rate: float = 0.05, l2: float = 1.0, min_rows: int = 20) -> TreeEnsemble:
    """Trees predicting log-odds of y = 1 from the columns of `x` (named `names`), with per-row `weight`."""
    n, d = x.shape
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    share = float(np.clip((w * y).sum() / w.sum(), 1e-6, 1 - 1e-6))
    base = float(np.log(share / (1 - share)))
    cuts = [np.unique(np.quantile(x[:, j], np.linspace(0, 1, CUTS + 1)[1:-1])) for j in range(d)]
    # x <= cuts[k] exactly when bin <= k
    bins = np.stack([np.searchsorted(cuts[j], x[:, j], side="left") for j in range(d)], axis=1)
    log_odds = np.full(n, base)
    trees: list[Tree] = []
    for _ in range(rounds):
        p = sigmoid(log_odds)
        g, h = w * (p - y), w * p * (1 - p)
        nodes: list[list[float]] = []  # [feature, threshold, left, right, value]
        _grow(np.arange(n), 0, g, h, bins, cuts, depth, rate, l2, min_rows, nodes)
        tree = Tree(tuple(int(node[0]) for node in nodes), tuple(node[1] for node in nodes),
                    tuple(int(node[2]) for node in nodes), tuple(int(node[3]) for node in nodes),
                    tuple(node[4] for node in nodes))
        trees.append(tree)
        log_odds += tree(x)
    return TreeEnsemble(tuple(names), base, tuple(trees))


def _grow(rows: np.ndarray, level: int, g: Array, h: Array, bins: np.ndarray, cuts: list[np.ndarray], depth: int,
          rate: float, l2: float, min_rows: int, nodes: list[list[float]]) -> int:
    """Appends the subtree over `rows` to `nodes` (depth first); returns its root's index."""
    index = len(nodes)
    G, H = float(g[rows].sum()), float(h[rows].sum())
    nodes.append([-1, 0.0, -1, -1, -rate * G / (H + l2)])
    if level >= depth or len(rows) < 2 * min_rows:
        return index
    best = (0.0, -1, -1)  # gain, feature, cut
    parent = G * G / (H + l2)
    for j, edges in enumerate(cuts):
        if not len(edges):
            continue
        b = bins[rows, j]
        gl = np.cumsum(np.bincount(b, g[rows], minlength=len(edges) + 1))[:-1]
        hl = np.cumsum(np.bincount(b, h[rows], minlength=len(edges) + 1))[:-1]
        nl = np.cumsum(np.bincount(b, minlength=len(edges) + 1))[:-1]
        gain = gl ** 2 / (hl + l2) + (G - gl) ** 2 / (H - hl + l2) - parent
        gain[(nl < min_rows) | (len(rows) - nl < min_rows)] = -np.inf
        k = int(np.argmax(gain))
        if gain[k] > best[0]:
            best = (float(gain[k]), j, k)
    _, feature, cut = best
    if feature < 0:
        return index
    goes_left = bins[rows, feature] <= cut
    left = _grow(rows[goes_left], level + 1, g, h, bins, cuts, depth, rate, l2, min_rows, nodes)
    right = _grow(rows[~goes_left], level + 1, g, h, bins, cuts, depth, rate, l2, min_rows, nodes)
    nodes[index][:4] = [feature, float(cuts[feature][cut]), left, right]
    return index
