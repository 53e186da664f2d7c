"""What the embedded judge computes for one item, before any combination: its signals. For faithfulness the
cross-encoder's logit and cheap lexical signals (`lexical`: the shares of the response's numbers and names the
context never mentions, of its content words and of its word pairs the context holds, the texts' lengths, the
negations the context does not hold); for relevancy the embedding cosine of query and response and the share of the
query's content words the response repeats. Then the bi-encoder's embeddings of the two texts (their product and
absolute difference, 768 numbers), for an adapter: always for relevancy (the shipped relevancy head is one), on
request for faithfulness. Serving, training and adaptation all read them from here, so they cannot drift apart.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # embedded_model reads INPUTS from here
    from .embedded_model import EmbeddedModel
from .embedded_text import features, window, words
from .lexical import content_words
from .training.calibrate import sigmoid

Array = npt.NDArray[np.float64]

# the signal columns, per metric, in order (calibrations and heads read a prefix)
INPUTS = {"faithfulness": ("logit", "unsupported_numbers", "unsupported_names", "word_support", "pair_support",
                          "response_words_log", "context_words_log", "query_words_log", "unsupported_negations"),
          "relevancy": ("cosine", "query_word_support")}


@dataclass(frozen=True)
class Item:
    query: str
    context: str
    response: str


def pair_support(context: str, response: str) -> float:
    """The share of the response's consecutive word pairs that also occur in the context (for a one-word response,
    whether the context has the word): high for text copied from the context, which word support alone does not
    tell from a reshuffle."""
    said, seen = response.lower().split(), context.lower().split()
    pairs = set(itertools.pairwise(said))
    if not pairs:
        return float(said[0] in seen) if said else 1.0
    return len(pairs & set(itertools.pairwise(seen))) / len(pairs)


_NEGATED = re.compile(r"\b(\w+) (not|never|no)\b")
_CONTRACTED = (("can't", "can not"), ("won't", "will not"), ("cannot", "can not"), ("n't", " not"))


def _negation_form(text: str) -> str:
    text = text.lower()
    for short, long in _CONTRACTED:
        text = text.replace(short, long)
    return text


def unsupported_negations(context: str, response: str) -> float:
    """How many of the response's negations ("was not", "never", "no", contractions spelt out) the context does not
    hold with the same word before them: an inserted "not" leaves word support whole, and this tells it from a
    copy (or a contraction of one)."""
    held = set(_NEGATED.findall(_negation_form(context)))
    return float(sum(found not in held for found in _NEGATED.findall(_negation_form(response))))


def query_word_support(query: str, response: str) -> float:
    asked = content_words(query)
    return len(asked & content_words(response)) / len(asked) if asked else 0.0


def lexical(query: str, context: str, response: str) -> list[float]:
    """The faithfulness INPUTS after the logit (what training computes beside its logits too)."""
    return [*features(context, response), pair_support(context, response), float(np.log1p(words(response))),
            float(np.log1p(words(context))), float(np.log1p(words(query))), unsupported_negations(context, response)]


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
    if metric == "relevancy" or embeddings:  # relevancy computes the embeddings anyway: its rows always carry them
        vectors = model.embeddings([*first, *second]).astype(np.float64)
        a, b = vectors[:len(items)], vectors[len(items):]
        if metric == "relevancy":
            rows[:, 0] = (a * b).sum(axis=1)
        rows = np.hstack([rows, a * b, np.abs(a - b)])
    return rows


def base_good(model: EmbeddedModel, metric: str, x: Array) -> Array:
    """P(good) as the shipped model computes it, from `signals` rows: its faithfulness calibration (trees or a
    logistic regression), its relevancy head."""
    if metric == "faithfulness":
        return 1.0 - sigmoid(model.calibration.log_odds(x))
    return model.relevancy.good(x)
