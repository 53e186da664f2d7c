"""Synthetic claim pairs: copied context text is supported; one edit (number, name, negation) makes it not."""

from __future__ import annotations

import random

from tracejudge.judge.embedded_text import sentences
from tracejudge.judge.training.data import LabelledRecord
from tracejudge.judge.training.synthetic import REPORTING, SOURCE, claim_pairs, edit, paraphrase, supported_form

CONTEXT = ("The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It is named after Gustave Eiffel, "
           "whose company designed and built the tower. Nothing here.")


def record(i: int, context: str = CONTEXT) -> LabelledRecord:
    return LabelledRecord(f"r{i}", "wiki", f"g{i}", "Tell me about it.", context, "A response.", i % 2)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_pairs_copy_a_context_sentence_and_edit_it_once() -> None:
    records = [record(i) for i in range(20)] + [record(99, "Berlin and Rome are far apart, says Mr Smith.")]
    pairs = claim_pairs(records, 1.0, seed=5)
    copied = [p for p in pairs if p.label == 0]
    edited = [p for p in pairs if p.label == 1]
    assert len(copied) == 21 and 0 < len(edited) <= 21
    assert all(p.source == SOURCE and flat(p.response.rstrip(".")) in flat(p.context) for p in copied)
    for p in edited:
        original = next(c for c in copied if c.id == p.id.replace("/edited", "/copied"))
        assert p.response != original.response and p.response not in p.context
        assert (p.group, p.context, p.query) == (original.group, original.context, original.query)
    assert claim_pairs(records, 1.0, seed=5) == pairs  # seeded
    assert claim_pairs(records, 0.0, seed=5) == []


def test_an_edit_changes_a_number_a_name_or_the_polarity() -> None:
    sentence = "The Eiffel Tower was completed in 1889 for the World's Fair in Paris."
    seen = set()
    for seed in range(40):
        changed = edit(sentence, CONTEXT, ["Berlin", "Paris"], random.Random(seed))
        assert changed is not None and changed != sentence
        if "1889" not in changed:
            seen.add("number")
        elif "Berlin" in changed:
            seen.add("name")  # never "Paris" from the list: the context mentions it
        elif "Gustave" in changed:
            seen.add("swap")  # a name from another sentence of the context
        elif "was not completed" in changed:
            seen.add("negation")
    assert seen == {"number", "name", "swap", "negation"}
    assert edit("nothing to change here at all", CONTEXT, ["Berlin"], random.Random(0)) is None


def test_the_supported_text_is_a_sentence_its_first_clause_or_two_sentences() -> None:
    first, second = sentences(CONTEXT)[:2]
    forms = {supported_form(second, CONTEXT, random.Random(seed)) for seed in range(40)}
    assert forms == {second, "It is named after Gustave Eiffel.", f"{second} Nothing here."}
    assert {supported_form(first, CONTEXT, random.Random(seed)) for seed in range(40)} == {first, f"{first} {second}"}


def test_additions_append_another_documents_sentence_and_leave_the_other_pairs_as_they_were() -> None:
    other = "The Colosseum in Rome held around fifty thousand spectators at its height."
    records = [record(i) for i in range(10)] + [record(i, other) for i in range(10, 20)]
    plain = claim_pairs(records, 1.0, seed=5)
    with_additions = claim_pairs(records, 1.0, seed=5, addition_share=1.0)
    added = [p for p in with_additions if p.id.endswith("/added")]
    assert [p for p in with_additions if not p.id.endswith("/added")] == plain
    assert added and all(p.label == 1 for p in added)
    for p in added:
        copied = next(c for c in plain if c.id == p.id.replace("/added", "/copied"))
        appended = flat(p.response).removeprefix(flat(copied.response)).strip()
        assert p.response.startswith(copied.response) and appended and appended not in flat(p.context)


def test_each_rewording_says_the_same_in_other_words() -> None:
    def every(sentence: str) -> set[str]:
        return {text for seed in range(60) if (text := paraphrase(sentence, random.Random(seed))) is not None}

    fronted = every("In 1887, the company began building the tower.")
    assert "The company began building the tower in 1887." in fronted
    assert "The company started building the tower in 1887." in fronted  # and a synonym with it
    assert any(t.startswith(("According to the text, in 1887", "It says that in 1887")) for t in fronted)
    # a later clause: moving the phrase to the end would attach it to that clause instead
    assert not any(t.endswith("in 1887.") for t in every("In 1887, the company built it, which took two years."))
    assert "The tower was finished in 1889." in every("The tower, which Eiffel designed, was finished in 1889.")
    assert {"It wasn't painted in 3 colours.", "It was not painted in three colours."} <= every(
        "It was not painted in 3 colours.")
    names_stay = every("Paris has 2,100,000 residents.")
    assert "Paris has 2,100,000 inhabitants." in names_stay and all("paris" not in t for t in names_stay)
    assert all("2,100,000" in t for t in names_stay)  # only a lone small number is spelt out
    # nothing else applies: a reporting phrase in front, the sentence itself unchanged
    only_reported = every("Nothing to reword at all.")
    assert only_reported == {prefix + "Nothing to reword at all." for prefix in REPORTING}


def test_rewordings_are_supported_pairs_added_beside_the_others() -> None:
    records = [record(i) for i in range(20)]
    plain = claim_pairs(records, 1.0, seed=5)
    with_rewordings = claim_pairs(records, 1.0, seed=5, paraphrase_share=1.0)
    reworded = [p for p in with_rewordings if p.id.endswith("/reworded")]
    assert [p for p in with_rewordings if not p.id.endswith("/reworded")] == plain
    assert len(reworded) == 20 and all(p.label == 0 and p.source == SOURCE for p in reworded)
    for p in reworded:
        copied = next(c for c in plain if c.id == p.id.replace("/reworded", "/copied"))
        assert p.response != copied.response and (p.group, p.context) == (copied.group, copied.context)
    assert claim_pairs(records, 1.0, seed=5, paraphrase_share=1.0) == with_rewordings
