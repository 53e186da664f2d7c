"""The review queue file: disagreeing tiers and unsure verdicts are appended for a person, with what they need to
decide and the feedback to send back; everything else is not."""

from __future__ import annotations

import json
from pathlib import Path

from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.queue import JudgeItem
from tracejudge.judge.verdict import Verdict
from tracejudge.processor.processors.judge_queue.review_queue import ReviewConfig, ReviewQueue


def item(key: int) -> JudgeItem:
    return JudgeItem(key, f"{key:016x}", f"{key:032x}", "faithfulness", "1",
                     {"query": "How tall?", "response": "500 m", "service": "qa"}, 1)


def verdict(tier: str, score: float, confidence: float = 0.9) -> Verdict:
    return Verdict("faithfulness", score, "pass" if score >= 0.5 else "fail", "why", tier=tier, confidence=confidence)


def test_disagreement_and_low_confidence_go_to_the_review_file(tmp_path: Path) -> None:
    path = tmp_path / "review" / "queue.jsonl"
    queue = ReviewQueue(ReviewConfig(str(path), min_confidence=0.3, disagreement=0.5), "7")
    local_pass = verdict("local", 0.6)
    final = [
        (item(1), CascadeVerdict(verdict("heavy", 0.1), "uncertain", "", local_pass)),  # labels differ
        (item(2), CascadeVerdict(verdict("heavy", 0.95), "uncertain", "", verdict("local", 0.52))),  # agree
        (item(3), CascadeVerdict(verdict("local", 0.9, confidence=0.1))),  # unsure
        (item(4), CascadeVerdict(verdict("local", 0.9, confidence=0.8))),  # sure, alone
        (item(5), CascadeVerdict(local_pass, "uncertain", "tier_paused", local_pass)),  # heavy could not answer
        (item(6), CascadeVerdict(Verdict("faithfulness", None, error_type="no_context", tier="local"))),
    ]
    assert queue.add(final, {1: "The tower is 330 m tall."}) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["span_id"] for line in lines] == [f"{1:016x}", f"{3:016x}"]
    first = lines[0]
    assert first["reason"].startswith("tiers disagree: local pass (0.60), heavy fail (0.10)")
    assert first["context"] == "The tower is 330 m tall." and first["judge_version"] == "7"
    assert [v["tier"] for v in first["verdicts"]] == ["local", "heavy"]
    assert first["feedback"]["labels"] == [{"metric": "faithfulness", "passed": None}]
    assert lines[1]["reason"] == "low confidence: 0.10 < 0.3"
    assert queue.add(final[:1], {}) == 1  # appended, not overwritten
    assert len(path.read_text().splitlines()) == 3


def test_an_unwritable_review_file_does_not_stop_judging(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    queue = ReviewQueue(ReviewConfig(str(tmp_path / "file" / "queue.jsonl"), min_confidence=1.0), "1")
    assert queue.add([(item(1), CascadeVerdict(verdict("local", 0.9, 0.5)))], {}) == 0


def test_the_review_file_rolls_over_at_its_size_keeping_one_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "queue.jsonl"
    queue = ReviewQueue(ReviewConfig(str(path), min_confidence=1.0, max_mib=1), "1")
    unsure = CascadeVerdict(verdict("local", 0.9, 0.5))
    context = "c" * 100_000
    for key in range(35):  # ~100 KB a line: over 1 MiB three times
        queue.add([(item(key), unsure)], {key: context})
    previous = [json.loads(line)["span_id"] for line in path.with_name("queue.jsonl.1").read_text().splitlines()]
    current = [json.loads(line)["span_id"] for line in path.read_text().splitlines()]
    # 11 lines pass 1 MiB: rolled at lines 11, 22 and 33; the file before the last roll-over was replaced
    assert previous == [f"{key:016x}" for key in range(22, 33)]
    assert current == [f"{key:016x}" for key in range(33, 35)]
    assert not list(tmp_path.glob("queue.jsonl.2"))
