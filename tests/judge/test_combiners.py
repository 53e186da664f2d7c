"""The judge's boosted trees: they learn an interaction a logistic regression cannot, are deterministic, and survive
the trip through model.json unchanged."""

from __future__ import annotations

import json

import numpy as np

from tracejudge.judge.combiners import Tree, TreeEnsemble
from tracejudge.judge.quality import auroc
from tracejudge.judge.training.boosting import fit_trees
from tracejudge.judge.training.calibrate import fit_logistic, sigmoid


def xor_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """y = 1 when exactly one of two signals is high (plus a noise column): no single weight per input tells."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 3))
    y = ((x[:, 0] > 0.5) ^ (x[:, 1] > 0.5)).astype(np.float64)
    flip = rng.uniform(size=n) < 0.05
    return x, np.where(flip, 1 - y, y)


def test_trees_learn_an_interaction_that_a_logistic_regression_cannot() -> None:
    x, y = xor_data(2000, seed=1)
    test_x, test_y = xor_data(1000, seed=2)
    trees = fit_trees(x, y, ("a", "b", "noise"))
    w, b = fit_logistic(x, y)
    labels = test_y.astype(int).tolist()  # quality's convention: label 1 should score low
    assert auroc((1 - sigmoid(trees.log_odds(test_x))).tolist(), labels) > 0.9
    assert auroc((1 - sigmoid(test_x @ w + b)).tolist(), labels) < 0.6
    assert fit_trees(x, y, ("a", "b", "noise")) == trees  # deterministic


def test_a_tree_sends_values_at_the_threshold_left_and_the_ensemble_round_trips() -> None:
    stump = Tree(feature=(0, -1, -1), threshold=(0.5, 0.0, 0.0), left=(1, -1, -1), right=(2, -1, -1),
                 value=(0.0, -1.0, 2.0))
    ensemble = TreeEnsemble(("a",), 0.25, (stump, stump))
    x = np.array([[0.5], [0.6], [0.1]])
    assert ensemble.log_odds(x).tolist() == [0.25 - 2.0, 0.25 + 4.0, 0.25 - 2.0]
    again = TreeEnsemble.from_document(json.loads(json.dumps(ensemble.document())))
    assert again == ensemble
