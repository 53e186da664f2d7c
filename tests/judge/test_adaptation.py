"""Adaptations: stored on both engines and found by version or as the latest of their base model; a judge with one
scores by its head and names it; one fitted on another model is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.support.postgres import OpenDatabase
from tracejudge.judge.adaptation import HEAD, Adaptation, Head
from tracejudge.judge.adaptation_store import MIGRATIONS, WHAT, AdaptationStore
from tracejudge.judge.adapting import Labelled, auroc_of, choose, fit
from tracejudge.judge.embedded import EmbeddedJudge
from tracejudge.judge.embedded_model import loaded, model_version
from tracejudge.judge.embedded_signals import Item, pair_support, signals, unsupported_negations
from tracejudge.judge.quality import auroc
from tracejudge.judge.tiers import TierConfig
from tracejudge.judge.verdict import JudgeInput
from tracejudge.processor.component.errors import ConfigError

CONTEXT = "Paris is the capital and largest city of France, with 2.1 million residents."


def constant_head(good: float) -> Head:
    """A head that ignores its inputs: P(good) = `good` for every item."""
    return Head(HEAD, (0.0,) * 8, float(np.log(good / (1 - good))), (0.0,) * 8, (1.0,) * 8, 1e-3, 10)


def test_adaptations_are_stored_and_the_latest_is_per_base_model(open_database: OpenDatabase) -> None:
    store = AdaptationStore(open_database(MIGRATIONS, "judge_queue.judges", WHAT))
    first = Adaptation.create("model@1", {"faithfulness": constant_head(0.8)}, {"note": 1})
    second = dataclasses.replace(Adaptation.create("model@1", {"faithfulness": constant_head(0.7)}, {}),
                                 created_unix_s=first.created_unix_s + 1)
    other = Adaptation.create("model@2", {"relevancy": constant_head(0.6)}, {})
    for adaptation in (first, second, other, first):  # installing twice keeps one
        store.install(adaptation)
    assert [a.version for a in store.all()] == [first.version, other.version, second.version]  # by creation
    assert store.get(first.version) == first and store.get("a-missing") is None
    latest = store.latest("model@1")
    assert latest is not None and latest.version == second.version
    assert store.latest("model@3") is None
    store.close()


def test_a_judge_with_an_adaptation_scores_by_its_head_and_names_it() -> None:
    base = model_version()
    adaptation = Adaptation.create(base, {"faithfulness": constant_head(0.8)}, {})
    judge = EmbeddedJudge(adaptation=adaptation)
    plain = EmbeddedJudge()
    item = JudgeInput("faithfulness", "What is the capital of France?", "Lyon.", CONTEXT)
    relevancy = dataclasses.replace(item, metric="relevancy")
    adapted, adapted_relevancy = judge.judge_now([item, relevancy])
    shipped, shipped_relevancy = plain.judge_now([item, relevancy])
    assert adapted.score == pytest.approx(0.8) and shipped.score != pytest.approx(0.8)
    assert adapted_relevancy.score == pytest.approx(shipped_relevancy.score)  # no relevancy head: as shipped
    assert judge.prompt_version == f"{base}+{adaptation.version}" and plain.prompt_version == base
    assert adapted.judge_prompt_version == judge.prompt_version and "[adapted: " in adapted.explanation
    with pytest.raises(ConfigError, match=r"was fitted on other@0, this model is .*: adapt again"):
        EmbeddedJudge(adaptation=dataclasses.replace(adaptation, base="other@0"))


def test_the_signals_a_head_reads() -> None:
    model = loaded()
    items = [Item("capital?", CONTEXT, "Paris is the capital of France."), Item("capital?", CONTEXT, "Lyon.")]
    x = signals(model, "faithfulness", items, embeddings=True)
    assert x.shape == (2, 9 + 768)
    assert x[0, 4] == pytest.approx(pair_support(CONTEXT, items[0].response)) and x[0, 4] > x[1, 4]
    r = signals(model, "relevancy", items, embeddings=False)  # relevancy rows always carry the embeddings
    assert r.shape == (2, 2 + 768) and -1 <= r[0, 0] <= 1
    assert pair_support("a b c", "a b c") == 1.0 and pair_support("a b c", "c b a") == 0.0


def test_an_inserted_negation_is_a_signal_a_contraction_of_the_context_is_not() -> None:
    context = "The tower was not painted red. It is never closed on Sundays."
    assert unsupported_negations(context, "The tower was painted red.") == 0.0
    assert unsupported_negations(context, "The tower wasn't painted red.") == 0.0
    assert unsupported_negations(context, "It is never closed.") == 0.0
    assert unsupported_negations(context, "It is not closed on Sundays.") == 1.0
    assert unsupported_negations(context, "It can't be seen and was no gift.") == 2.0


def test_only_an_embedded_tier_takes_an_adaptation() -> None:
    TierConfig(adaptation="latest").validate("judges.local")
    with pytest.raises(ConfigError, match=r"judges.heavy.adaptation: only with judge: embedded \(this tier is none"):
        TierConfig(judge="none", adaptation="latest").validate("judges.heavy")


def test_the_rank_auroc_of_adapting_agrees_with_the_quality_module() -> None:
    rng = np.random.default_rng(3)
    good = np.round(rng.uniform(size=300), 1)  # many ties
    labels = (rng.uniform(size=300) < 0.4).astype(np.float64)
    assert auroc_of(good, labels) == pytest.approx(auroc(good.tolist(), labels.astype(int).tolist()))


def test_labels_from_too_few_groups_are_refused_not_crashed_on() -> None:
    # one group of good answers, one of bad: every cross-validation fold's training holds one class
    x = np.random.default_rng(1).normal(size=(40, 8))
    labels = np.array([0.0] * 20 + [1.0] * 20)
    assert choose("faithfulness", x, labels, ["good"] * 20 + ["bad"] * 20, seed=1, min_adapter_labels=200) is None
    unjudgeable = [Labelled(Item("q", "", "an answer"), i % 2, f"g{i}", "file") for i in range(40)]
    outcome = fit(loaded(), model_version(), "faithfulness", unjudgeable, None)
    assert outcome.report["not judgeable (left out)"] == 40 and outcome.adaptation is None
    assert outcome.report["decision"].startswith("refused: too few labels")
