"""Queries as a few numbers for drift: embeddings from the MiniLM bi-encoder shipped with the embedded judge
(judge/model, offline), projected on `dims` fixed random directions (seeded Gaussian, Johnson–Lindenstrauss): a shift
in what users ask moves the projections' distributions, which the drift detectors watch one by one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tracejudge.judge.embedded_model import EmbeddedModel


class QueryProjection:
    def __init__(self, model: EmbeddedModel, dims: int = 2, seed: int = 0) -> None:
        self._model = model
        self._dims, self._seed = dims, seed
        self._directions: np.ndarray | None = None

    def __call__(self, queries: Sequence[str]) -> list[tuple[float, ...]]:
        """Synchronous CPU work: run it in an executor."""
        if not queries:
            return []
        vectors = self._model.embeddings(list(queries))
        if self._directions is None:
            rng = np.random.default_rng(self._seed)
            directions = rng.standard_normal((vectors.shape[1], self._dims))
            self._directions = directions / np.linalg.norm(directions, axis=0)
        return [tuple(round(float(x), 6) for x in row) for row in vectors @ self._directions]
