"""`tracejudge golden export`: judged failures users complained about become a deduplicated dataset with provenance,
in JSONL and in a deepeval dataset that deepeval itself loads."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from tests.stats.test_monitor import stream
from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig, NewItem
from tracejudge.processor import cli
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.stats.store import StatsStore

CONTEXT = "The Eiffel Tower is 330 metres tall.\n\nIt stands in Paris."
# (query, response, score, feedback); traces 0 and 1 ask the same thing (with different spacing)
CASES = [
    ("How tall is the tower?", "500 metres.", 0.10, Feedback("", thumbs=-1, comment="wrong")),
    ("How  tall is the Tower?", "450 metres.", 0.20, Feedback("", edited_text="330 metres.")),
    ("Where is it?", "In Rome.", 0.15, None),  # low score, nobody complained
    ("Is it tall?", "Yes, 330 metres.", 0.90, Feedback("", regenerated=True)),  # complaint, good score
    ("Who built it?", "Gustave Eiffel.", 0.30, Feedback("", rating=0.2)),
]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  llm_extract:
  judge_queue:
    storage: file_storage
    metrics: [faithfulness]
    judge_version: "1"
exporters:
  debug: {{}}
extensions:
  file_storage: {{directory: "{tmp_path / 'data'}"}}
service:
  extensions: [file_storage]
  pipelines:
    traces: {{receivers: [otlp], processors: [llm_extract, judge_queue], exporters: [debug]}}
""")
    return path


def build_stores(data: Path) -> None:
    data.mkdir()
    queue = JudgeQueue(str(data / "judge_queue.db"), JudgeQueueConfig(), "1")
    store = StatsStore(data / "judge_queue.stats.db")
    evaluations = stream(len(CASES))
    for e, (query, response, score, feedback) in zip(evaluations, CASES, strict=True):
        queue.enqueue([NewItem(e.span_id, e.trace_id, "faithfulness", {"query": query, "response": response})])
        (item,) = queue.lease(1, 60)
        queue.complete([item.key], {item.key: CONTEXT})
        store.add([dataclasses.replace(e, score=score, passed=score >= 0.5)])
        if feedback is not None:
            store.save_feedback([dataclasses.replace(feedback, trace_id=e.trace_id).identified()])
    queue.close()
    store.close()


def test_confirmed_failures_are_exported_deduplicated_with_provenance(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    build_stores(tmp_path / "data")
    out, deepeval_file = tmp_path / "golden.jsonl", tmp_path / "golden.json"
    assert cli.main(["golden", "export", "--config", str(config), "--out", str(out),
                     "--deepeval", str(deepeval_file)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["query"] for r in records] == ["How tall is the tower?", "Who built it?"]  # worst first
    tower, builder = records
    assert tower["response"] == "500 metres." and tower["score"] == 0.10 and tower["context"] == CONTEXT
    assert tower["provenance"]["occurrences"] == 2 and len(tower["provenance"]["trace_ids"]) == 2
    assert tower["feedback"] == ["edited", "thumbs_down"] and tower["comments"] == ["wrong"]
    assert tower["expected_output"] == "330 metres."
    assert tower["provenance"]["prompt_version"] == "v1" and tower["provenance"]["fingerprint"] == "fp_a"
    assert builder["feedback"] == ["low_rating"] and builder["id"].startswith("g-")

    os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")
    os.environ.setdefault("DEEPEVAL_DISABLE_DOTENV", "1")
    from deepeval.dataset import EvaluationDataset

    dataset = EvaluationDataset()
    dataset.add_goldens_from_json_file(str(deepeval_file))
    assert [g.input for g in dataset.goldens] == ["How tall is the tower?", "Who built it?"]
    assert dataset.goldens[0].retrieval_context == ["The Eiffel Tower is 330 metres tall.", "It stands in Paris."]
    assert dataset.goldens[0].actual_output == "500 metres."


def test_an_edit_becomes_the_expected_output_and_low_scores_without_feedback_are_opt_in(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    build_stores(tmp_path / "data")
    out = tmp_path / "golden.jsonl"
    assert cli.main(["golden", "export", "--config", str(config), "--out", str(out), "--without-feedback",
                     "--max-score", "0.25"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["response"] for r in records] == ["500 metres.", "In Rome."]
    assert records[0]["expected_output"] == "330 metres."  # the other occurrence's user edit
    assert records[0]["feedback"] == ["edited", "thumbs_down"]
    assert records[1]["feedback"] == [] and records[1]["provenance"]["occurrences"] == 1


def test_nothing_judged_yet_writes_an_empty_dataset(tmp_path: Path) -> None:
    out = tmp_path / "golden.jsonl"
    assert cli.main(["golden", "export", "--config", str(write_config(tmp_path)), "--out", str(out)]) == 0
    assert out.read_text() == ""
