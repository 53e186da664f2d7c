"""Logistic calibration: the encoder's logit and the cheap features become a probability (numpy only)."""

from __future__ import annotations

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
