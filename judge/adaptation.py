"""The embedded judge adapted to a user's own labels: a new head over the shipped model's signals, stored with the
data, named by a version of its own.

A head maps what the shipped model computes for one item (`embedded_signals`: the logit and lexical signals for
faithfulness, the embedding cosine and query word support for relevancy) to P(good). An *adapter* head also reads
the bi-encoder's embeddings of the two texts: it can learn what "supported" or "on topic" looks like in a domain,
and needs more labels. Heads are logistic regressions (numpy), so serving an adaptation costs at most two
embeddings per item.

`fit` (what `tracejudge adapt` runs) keeps a held-out share of the labels apart, chooses among heads by grouped
cross-validation on the rest, and reports before and after on the held-out share with bootstrap intervals. It
returns an adaptation only if its held-out AUROC is above the current judge's.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .embedded_signals import Array
from .training.calibrate import fit_logistic, sigmoid

HEAD, ADAPTER = "head", "adapter"


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

    @classmethod
    def from_dict(cls, h: dict[str, Any]) -> Head:
        return cls(h["kind"], tuple(h["weights"]), h["bias"], tuple(h["center"]), tuple(h["scale"]), h["l2"],
                   h["labels"])

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
        heads = {m: Head.from_dict(h) for m, h in raw["heads"].items()}
        return cls(raw["version"], raw["base"], heads, raw["created_unix_s"], raw.get("report", {}))

    @classmethod
    def create(cls, base: str, heads: dict[str, Head], report: dict[str, Any]) -> Adaptation:
        content = json.dumps({"base": base, "heads": {m: asdict(h) for m, h in sorted(heads.items())}},
                             sort_keys=True)
        return cls("a-" + hashlib.sha256(content.encode()).hexdigest()[:10], base, heads, time.time(), report)


