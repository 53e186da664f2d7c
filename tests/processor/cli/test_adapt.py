"""`tracejudge adapt` on the shipped judge: where it is weakest (FaithDial, below plain word overlap), a few hundred of
the user's labels make it measurably better on labels it never saw; the adaptation is installed as a judge version that
serve then judges with and names; adapting again on the same labels installs nothing; reviewers' stored labels on
judged spans are labels too."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

import grpc
import pytest

from tests.processor.processors.judge_queue.test_stage import EXPORT, attributes, evaluation_spans, rag_trace
from tests.stats.test_monitor import stream
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.waiting import eventually
from tracejudge.judge.adaptation_store import AdaptationStore
from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig, NewItem
from tracejudge.judge.training.data import LabelledRecord, read_records
from tracejudge.processor import cli
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.stats.store import StatsStore

DATA = Path(os.environ.get("TRACEJUDGE_JUDGE_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))


def dev_records(name: str, n: int, seed: int = 7) -> list[LabelledRecord]:
    """`n` records of one judge-dev file, seeded (the labelled sets sit beside the checkout, never in it)."""
    path = DATA / "judge-dev" / f"{name}.dev.jsonl"
    if not path.is_file():
        message = f"no {path}: set TRACEJUDGE_JUDGE_DATA to the directory holding judge-dev/"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(message)
        pytest.skip(message)
    records = [r for r in read_records(path) if r.has_context]
    random.Random(seed).shuffle(records)
    return records[:n]


def write_config(tmp_path: Path, downstream: str = "127.0.0.1:1", adaptation: str = "latest") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  llm_extract:
  sampler: {{rate: 1.0}}
  judge_queue:
    storage: file_storage
    metrics: [faithfulness]
    decision_wait: 0s
    max_decision_wait: 0s
    workers: {{processes: 0, poll_interval: 20ms}}
    judges:
      local: {{judge: embedded, adaptation: "{adaptation}"}}
exporters:
  otlp: {{endpoint: "{downstream}", tls: {{insecure: true}}}}
extensions:
  file_storage: {{directory: "{tmp_path / 'data'}"}}
service:
  extensions: [file_storage]
  pipelines:
    traces: {{receivers: [otlp], processors: [llm_extract, sampler, judge_queue], exporters: [otlp]}}
""")
    return path


def write_labels(path: Path, records: list[LabelledRecord]) -> Path:
    path.write_text("".join(json.dumps({"id": r.id, "group": r.group, "query": r.query, "context": r.context,
                                        "response": r.response, "label": r.label}) + "\n" for r in records))
    return path


def installed(tmp_path: Path) -> list[str]:
    store = AdaptationStore(tmp_path / "data" / "judge_queue.judges.db")
    try:
        return [a.version for a in store.all()]
    finally:
        store.close()


async def test_a_few_hundred_labels_of_a_weak_domain_make_the_judge_better_on_labels_it_never_saw(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    labels = write_labels(tmp_path / "faithdial.jsonl", dev_records("faithdial_audit", 1000))
    report = tmp_path / "report.json"
    assert cli.main(["adapt", "--config", str(config), "--labels", str(labels), "--holdout", "0.5",
                     "--report", str(report)]) == 0
    out = capsys.readouterr().out
    result = json.loads(report.read_text())
    held = result["held_out"]
    assert min(result["labels"]["adapt"].values()) >= 100 and min(result["labels"]["held_out"].values()) >= 100
    # measurably better where it never looked: the paired interval of the gain is above zero
    assert held["after"]["auroc"] >= held["before"]["auroc"] + 0.05, held
    assert held["auroc_difference_ci95"][0] > 0, held
    assert held["after"]["balanced_accuracy"] > held["before"]["balanced_accuracy"]
    (version,) = installed(tmp_path)
    assert f"installed {version}" in out and "AUROC [95% CI]" in out

    # adapting again on the same labels: the fit is the installed one, not above it -> refused, nothing new
    assert cli.main(["adapt", "--config", str(config), "--labels", str(labels), "--holdout", "0.5"]) == 1
    assert "refused" in capsys.readouterr().out and installed(tmp_path) == [version]

    # serve judges with it (`latest`) and names it on the evaluation span and in the decision records
    request, llm = rag_trace()
    async with CaptureServer() as downstream:
        yaml_text = write_config(tmp_path, downstream.endpoint).read_text()
        async with running(yaml_text) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
            await eventually(lambda: len(evaluation_spans(downstream)) == 1, what="an evaluation span")

            async def judged_decision() -> list[dict[str, object]]:
                found = await service.decisions.for_trace(llm.trace_id.hex())
                return [json.loads(d.detail) for d in found if d.decision == "judged"]
            await eventually(judged_decision, what="the judged decision record")
            (judged,) = await judged_decision()
    ((span, _),) = evaluation_spans(downstream)
    assert attributes(span)["tracejudge.judge.version"] == f"1+{version}"
    (event,) = span.events
    assert str(attributes(event)["tracejudge.judge.prompt_version"]).endswith(f"+{version}")
    assert judged["judge_version"] == f"1+{version}" and f"[adapted: {version}]" in judged["explanation"]
    store = StatsStore(tmp_path / "data" / "judge_queue.stats.db")
    try:
        assert {e.judge_version for batch in store.evaluations() for e in batch} == {f"1+{version}"}
    finally:
        store.close()


def test_an_adaptation_the_config_names_must_be_installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    config = write_config(tmp_path, adaptation="a-0000000000")
    assert cli.main(["adapt", "--config", str(config), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert "processors.judge_queue.judges.local.adaptation: 'a-0000000000' is not installed" in error


def test_reviewers_labels_on_judged_spans_are_labels_and_too_few_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Spans judged and kept in the queue, labelled by a reviewer (feedback `labels`, as the review page sends)."""
    config = write_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    queue = JudgeQueue(str(data / "judge_queue.db"), JudgeQueueConfig(), "1")
    store = StatsStore(data / "judge_queue.stats.db")
    records = dev_records("faithdial_audit", 30, seed=11)
    for e, r in zip(stream(len(records)), records, strict=True):
        queue.enqueue([NewItem(e.span_id, e.trace_id, "faithfulness", {"query": r.query, "response": r.response})])
        (item,) = queue.lease(1, 60)
        queue.complete([item.key], {item.key: r.context})
        store.add([e])
        label = Feedback(e.trace_id, e.span_id, source="reviewer", labels=(("faithfulness", r.label == 0),))
        store.save_feedback([label.identified(), dataclasses.replace(Feedback(e.trace_id, thumbs=1)).identified()])
    queue.close()
    store.close()
    report = tmp_path / "report.json"
    assert cli.main(["adapt", "--config", str(config), "--feedback", "--report", str(report)]) == 1
    result = json.loads(report.read_text())
    assert result["sources"] == {"reviewer": 30}  # the thumbs up did not outvote the reviewers
    counts = result["labels"]
    good = sum(r.label == 0 for r in records)  # the reviewers' verdicts, polarity kept: passed = good
    assert counts["adapt"]["good"] + counts["held_out"]["good"] == good
    assert counts["adapt"]["bad"] + counts["held_out"]["bad"] == 30 - good
    assert result["decision"].startswith("refused: too few labels")
    assert "too few labels" in capsys.readouterr().out and installed(tmp_path) == []
