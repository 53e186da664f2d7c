"""What the embedded model sees: context selection within the window, windows, cheap features, the calibration fit."""

from __future__ import annotations

import numpy as np

from tracejudge.judge.embedded_text import (
    SEPARATOR,
    context_budget,
    context_windows,
    features,
    select_context,
    sentences,
    unsupported,
    words,
)
from tracejudge.judge.training.calibrate import fit_logistic

FILLER = [f"Sentence number {i} talks about weather patterns in region {i}." for i in range(40)]


def test_a_short_context_is_kept_whole() -> None:
    assert select_context("  Paris is in France.  ", "Paris.", 50) == "Paris is in France."


def test_a_long_context_keeps_the_sentences_that_share_words_with_the_response_in_document_order() -> None:
    context = " ".join([*FILLER[:10], "The Eiffel Tower opened in 1889 in Paris.", *FILLER[10:30],
                        "Gustave Eiffel's company built the tower.", *FILLER[30:]])
    selected = select_context(context, "Gustave Eiffel's company built the Eiffel Tower in 1889.", 30)
    assert words(selected) <= 30
    assert selected.index("opened in 1889") < selected.index("Gustave Eiffel's company")
    assert SEPARATOR in selected  # skipped sentences are marked


def test_one_sentence_longer_than_the_budget_is_cut_not_dropped() -> None:
    long_sentence = " ".join(["word"] * 100) + "."
    assert words(select_context(long_sentence + " Another.", "word", 10)) == 10


def test_windows_cover_the_context_within_the_budget() -> None:
    context = " ".join(FILLER)
    windows = context_windows(context, 50)
    assert all(words(w) <= 50 for w in windows)
    assert " ".join(windows).split() == context.split()
    assert context_windows("", 50) == [""]


def test_sentences_and_budget() -> None:
    assert sentences("Dr. Who. It is 3.5 m long! Yes?\nNew line") == ["Dr.", "Who.", "It is 3.5 m long!", "Yes?",
                                                                       "New line"]
    assert context_budget("one two three", 140, 40) == 137
    assert context_budget(" ".join(["w"] * 200), 140, 40) == 40


def test_features_flag_numbers_and_names_the_context_never_mentions() -> None:
    context = "Paris is the capital of France, with 2.1 million residents."
    assert features(context, "Paris has 2.1 million residents.") == [0.0, 0.0, 1.0]
    numbers, names, support = features(context, "In 1990 Lyon had 3 million residents.")
    assert (numbers, names) == (1.0, 1.0) and support < 1.0
    assert unsupported(context, "In 1990 Lyon had 3 million residents, like Paris.") == ["1990", "3", "Lyon"]
    assert unsupported(context, "Lyon is big.") == []  # a capital at a sentence's start is not taken for a name
    assert features(context, "yes") == [0.0, 0.0, 1.0]  # nothing claimed, nothing unsupported


def test_logistic_fit_recovers_the_generating_coefficients() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 2))
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 0.5 * x[:, 1] - 1.0)))).astype(float)
    w, b = fit_logistic(x, y, l2=0.0)
    assert np.allclose(w, [2.0, -0.5], atol=0.1) and abs(b + 1.0) < 0.1


def test_logistic_sample_weights_count_like_repeated_rows() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 2))
    y = (rng.random(300) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    repeats = rng.integers(1, 4, size=300)
    weighted = fit_logistic(x, y, sample_weight=repeats.astype(float))
    repeated = fit_logistic(np.repeat(x, repeats, axis=0), np.repeat(y, repeats))
    assert np.allclose(weighted[0], repeated[0], atol=1e-8) and abs(weighted[1] - repeated[1]) < 1e-8
    assert not np.allclose(weighted[0], fit_logistic(x, y)[0], atol=1e-3)
