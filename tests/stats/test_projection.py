"""Query embeddings from the shipped MiniLM encoder, projected for drift: a change of topic moves the projections,
a change of wording within a topic does not."""

from __future__ import annotations

import random

from tracejudge.judge.embedded_model import loaded
from tracejudge.stats.drift import Psi
from tracejudge.stats.projection import QueryProjection

COOKING = ["How long should I {} {} for?", "What can I use instead of {} when I {} {}?", "Why does my {} {} burn?"]
TAXES = ["Can I deduct {} from my {} tax?", "When is the {} tax return for {} due?", "Do I pay {} tax on {}?"]
WORDS = {"cooking": ["bake", "roast", "rice", "bread", "butter", "onions", "pasta", "simmer", "garlic", "fry"],
         "taxes": ["income", "property", "my home office", "capital gains", "self-employment", "a car", "2025",
                   "dividends", "sales", "a rental"]}


def questions(topic: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    templates = COOKING if topic == "cooking" else TAXES
    return [rng.choice(templates).format(*rng.sample(WORDS[topic], 3)) for _ in range(n)]


def alarms(reference: list[str], current: list[str]) -> list[bool]:
    project = QueryProjection(loaded(), dims=2, seed=0)
    points = project(reference + current)
    detectors = [Psi(bins=10, window=len(reference), alpha=0.01) for _ in range(2)]
    for point in points:
        for detector, x in zip(detectors, point, strict=True):
            detector.update(x)
    assert all(d.windows == 1 for d in detectors)
    return [d.alarm for d in detectors]


def test_a_new_topic_is_drift_and_new_wording_is_not() -> None:
    assert any(alarms(questions("cooking", 200, 1), questions("taxes", 200, 2)))
    assert not any(alarms(questions("cooking", 200, 1), questions("cooking", 200, 3)))


def test_projections_are_seeded_and_offline() -> None:
    texts = questions("taxes", 5, 4)
    assert QueryProjection(loaded(), seed=7)(texts) == QueryProjection(loaded(), seed=7)(texts)
    assert QueryProjection(loaded(), seed=7)(texts) != QueryProjection(loaded(), seed=8)(texts)
