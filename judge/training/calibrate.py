"""Logistic calibration: the encoder's logit and the cheap features become a probability (numpy only)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def sigmoid(x: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -40, 40))), dtype=np.float64)


def fit_logistic(x: Array, y: Array, l2: float = 1e-3, iterations: int = 50,
                 sample_weight: Array | None = None) -> tuple[Array, float]:
    """Weights and bias minimising the (weighted) log loss plus `l2`·|w|² by Newton's method (rows of `x` are
    examples; `sample_weight` defaults to 1 each)."""
    n, d = x.shape
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    design = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    penalty = np.diag([l2 * float(s.sum())] * d + [0.0])
    for _ in range(iterations):
        p = sigmoid(design @ beta)
        gradient = design.T @ (s * (p - y)) + penalty @ beta
        hessian = design.T @ (design * (s * p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian + 1e-9 * np.eye(d + 1), gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:d], float(beta[d])


def cross_fitted(x: np.ndarray, y: np.ndarray, groups: Sequence[str], columns: list[int], weight: np.ndarray
                 ) -> np.ndarray:
    """Out-of-fold P(bad) from two folds split by group: calibration quality not flattered by fitting."""
    fold = np.array([hash_fold(g) for g in groups])
    out = np.zeros(len(y))
    for k in (0, 1):
        w, b = fit_logistic(x[fold != k][:, columns], y[fold != k], sample_weight=weight[fold != k])
        out[fold == k] = sigmoid(x[fold == k][:, columns] @ w + b)
    return out


def hash_fold(group: str) -> int:
    return hashlib.blake2b(group.encode(), digest_size=1).digest()[0] % 2
