"""Training data preparation: group-wise splits never leak a group, and length matching removes the length shortcut."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tracejudge.judge.quality import auroc
from tracejudge.judge.training.data import LabelledRecord, length_matched, read_records, relevancy_pairs, split_by_group


def record(i: int, label: int, words: int, group: str = "") -> LabelledRecord:
    return LabelledRecord(f"r{i}", "set", group or f"g{i}", "q", "context", " ".join(["w"] * words), label)


def test_records_are_read_and_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "halueval_qa.dev.jsonl"
    path.write_text(json.dumps({"id": "a", "query": "q", "context": "c", "response": "r", "label": 1,
                                "group": "g1", "source": "halueval_qa"}) + "\n\n"
                    + json.dumps({"id": "b", "response": "r", "label": 0}) + "\n")
    first, second = read_records(path)
    assert (first.source, first.group, first.label, first.has_context) == ("halueval_qa", "g1", 1, True)
    assert (second.source, second.group, second.has_context) == ("halueval_qa", "b", False)
    path.write_text('{"id": "a", "response": "r"}\n')
    with pytest.raises(ValueError, match=r"halueval_qa.dev.jsonl:1: not a labelled record"):
        read_records(path)


def test_the_group_split_keeps_every_group_on_one_side_and_is_seeded() -> None:
    records = [record(i, i % 2, 5, group=f"g{i // 3}") for i in range(3000)]
    rest, held = split_by_group(records, 0.2, seed=1)
    assert not {r.group for r in rest} & {r.group for r in held}
    assert abs(len(held) / len(records) - 0.2) < 0.04
    assert split_by_group(records, 0.2, seed=1) == (rest, held)
    assert split_by_group(records, 0.2, seed=2)[1] != held


def test_length_matching_leaves_length_no_signal() -> None:
    rng = random.Random(3)
    # Bad responses are long, good ones short, as in HaluEval QA: length alone separates them.
    records = ([record(i, 0, rng.randint(1, 12)) for i in range(2000)]
               + [record(2000 + i, 1, rng.randint(4, 40)) for i in range(2000)])

    def length_auroc(rs: list[LabelledRecord]) -> float:
        return auroc([-len(r.response.split()) for r in rs], [r.label for r in rs])

    assert length_auroc(records) > 0.85
    matched = length_matched(records, seed=0)
    assert sum(r.label for r in matched) * 2 == len(matched) > 800
    assert abs(length_auroc(matched) - 0.5) < 0.1  # what is left: the same length mix in both classes
    assert length_matched(records, seed=0) == matched


def test_relevancy_pairs_never_call_an_answer_to_the_same_question_off_topic() -> None:
    asked = [LabelledRecord(f"q{i}", "qa", f"g{i}", f"question {i % 40}?", "", f"answer {i}", 0) for i in range(400)]
    summaries = [LabelledRecord(f"s{i}", "summaries", f"d{i}", "Summarize the document.", "doc", f"summary {i}", 0)
                 for i in range(200)]
    queries, responses, relevant, groups = relevancy_pairs([*asked, *summaries], seed=1)
    by_response = {r.response: r for r in asked}
    assert len(queries) == len(responses) == len(relevant) == len(groups) > 300
    assert "Summarize the document." not in queries  # every record asks it: no off-topic answer exists there
    for query, response, y in zip(queries, responses, relevant, strict=True):
        assert (by_response[response].query == query) == (y == 1.0)
    assert relevancy_pairs([*asked, *summaries], seed=1) == (queries, responses, relevant, groups)
