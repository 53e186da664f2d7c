"""The embedded judge adapted to a user's own labels: a new head over the shipped model's signals, stored with the
data, named by a version of its own.

A head maps what the shipped model computes for one item to P(good): for faithfulness the cross-encoder's logit, the
cheap features of the shipped calibration, the share of the response's word pairs found in the context and the
texts' lengths (log words); for
relevancy the embedding cosine and the share of the query's content words the response repeats. An *adapter* head
also reads the bi-encoder's embeddings of the two texts (their element-wise product and absolute difference, 768
numbers): it can learn what "supported" or "on topic" looks like in a domain, and needs more labels. Heads are
logistic regressions (numpy), so serving an adaptation costs at most two embeddings per item.

`fit` (what `tracejudge adapt` runs) keeps a held-out share of the labels apart, chooses among heads by grouped
cross-validation on the rest, and reports before and after on the held-out share with bootstrap intervals. It
returns an adaptation only if its held-out AUROC is above the current judge's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .embedded_model import EmbeddedModel
from .embedded_text import features, window, words
from .lexical import content_words
from .training.calibrate import fit_logistic, sigmoid

Array = npt.NDArray[np.float64]

# what a head reads besides the embeddings, per metric
INPUTS = {"faithfulness": ("logit", "unsupported_numbers", "unsupported_names", "word_support", "pair_support",
                          "response_words_log", "context_words_log", "query_words_log"),
          "relevancy": ("cosine", "query_word_support")}
HEAD, ADAPTER = "head", "adapter"


@dataclass(frozen=True)
class Item:
    query: str
    context: str
    response: str


@dataclass(frozen=True)
class Head:
    """P(good) = sigmoid(z · weights + bias), z = (x − center) / scale, x = the metric's INPUTS (then, for an
    adapter, the embeddings')."""

    kind: str  # HEAD | ADAPTER
    weights: tuple[float, ...]
    bias: float
    center: tuple[float, ...]
    scale: tuple[float, ...]
    l2: float
    labels: int  # what it was fitted on

    @classmethod
    def fitted(cls, kind: str, x: Array, good: Array, l2: float) -> Head:
        center, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        weights, bias = fit_logistic((x - center) / scale, good, l2=l2)
        return cls(kind, tuple(map(float, weights)), bias, tuple(map(float, center)), tuple(map(float, scale)), l2,
                   len(good))

    def good(self, x: Array) -> Array:
        z = (x[:, :len(self.weights)] - np.asarray(self.center)) / np.asarray(self.scale)
        return sigmoid(z @ np.asarray(self.weights) + self.bias)


@dataclass(frozen=True)
class Adaptation:
    """Heads per metric over one base model (`base`, the embedded judge's own version): a judge version."""

    version: str  # "a-" and 10 hex digits of the content
    base: str
    heads: dict[str, Head]
    created_unix_s: float
    report: dict[str, Any] = field(default_factory=dict)

    def document(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_document(cls, text: str) -> Adaptation:
        raw = json.loads(text)
        heads = {m: Head(h["kind"], tuple(h["weights"]), h["bias"], tuple(h["center"]), tuple(h["scale"]), h["l2"],
                         h["labels"]) for m, h in raw["heads"].items()}
        return cls(raw["version"], raw["base"], heads, raw["created_unix_s"], raw.get("report", {}))

    @classmethod
    def create(cls, base: str, heads: dict[str, Head], report: dict[str, Any]) -> Adaptation:
        content = json.dumps({"base": base, "heads": {m: asdict(h) for m, h in sorted(heads.items())}},
                             sort_keys=True)
        return cls("a-" + hashlib.sha256(content.encode()).hexdigest()[:10], base, heads, time.time(), report)


def pair_support(context: str, response: str) -> float:
    """The share of the response's consecutive word pairs that also occur in the context (for a one-word response,
    whether the context has the word): high for text copied from the context, which word support alone does not
    tell from a reshuffle."""
    said, seen = response.lower().split(), context.lower().split()
    pairs = set(itertools.pairwise(said))
    if not pairs:
        return float(said[0] in seen) if said else 1.0
    return len(pairs & set(itertools.pairwise(seen))) / len(pairs)


def query_word_support(query: str, response: str) -> float:
    asked = content_words(query)
    return len(asked & content_words(response)) / len(asked) if asked else 0.0


def lexical(query: str, context: str, response: str) -> list[float]:
    """The faithfulness INPUTS after the logit (what training computes beside its logits too)."""
    return [*features(context, response), pair_support(context, response), float(np.log1p(words(response))),
            float(np.log1p(words(context))), float(np.log1p(words(query)))]


def signals(model: EmbeddedModel, metric: str, items: Sequence[Item], embeddings: bool,
            logits: Sequence[float] | npt.NDArray[np.float32] | None = None) -> Array:
    """One row per item: the metric's INPUTS, then (with `embeddings`) the 768 embedding interactions. `logits`:
    the cross-encoder's, when the caller has them already."""
    settings = model.settings
    if metric == "faithfulness":
        pairs = [window(i.context, i.response, int(settings["window_words"]), int(settings["min_context_words"]))
                 for i in items]
        raw = model.faithfulness_logits(pairs) if logits is None else np.asarray(logits)
        rows = np.array([[float(x), *lexical(i.query, i.context, i.response)] for x, i in zip(raw, items, strict=True)],
                        dtype=np.float64).reshape(len(items), -1)
        first, second = [p[0] for p in pairs], [i.response for i in items]
    elif metric == "relevancy":
        first, second = [i.query for i in items], [i.response for i in items]
        rows = np.array([[0.0, query_word_support(i.query, i.response)] for i in items],
                        dtype=np.float64).reshape(len(items), -1)
    else:
        raise ValueError(f"no adaptable head for metric {metric!r}")
    if metric == "relevancy" or embeddings:
        vectors = model.embeddings([*first, *second]).astype(np.float64)
        a, b = vectors[:len(items)], vectors[len(items):]
        if metric == "relevancy":
            rows[:, 0] = (a * b).sum(axis=1)
        if embeddings:
            rows = np.hstack([rows, a * b, np.abs(a - b)])
    return rows


def base_good(model: EmbeddedModel, metric: str, x: Array) -> Array:
    """P(good) as the shipped model computes it, from `signals` rows: its trees or its logistic calibration."""
    settings = model.settings
    if metric == "faithfulness":
        if model.trees is not None:
            return 1.0 - sigmoid(model.trees.log_odds(x))
        calibration = settings["calibration"]
        columns = len(calibration["weights"])
        return 1.0 - sigmoid(x[:, :columns] @ np.asarray(calibration["weights"]) + float(calibration["bias"]))
    relevancy = settings["relevancy"]
    if "weights" in relevancy:  # over the first len(weights) of INPUTS["relevancy"]
        return sigmoid(x[:, :len(relevancy["weights"])] @ np.asarray(relevancy["weights"]) + float(relevancy["bias"]))
    return sigmoid(float(relevancy["weight"]) * x[:, 0] + float(relevancy["bias"]))
