"""`tracejudge gate`: the paired comparison against scipy, exit statuses from given scores, and a real run that
judges a handwritten golden set with the configured embedded judge."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tracejudge.judge.embedded_model import model_version
from tracejudge.processor import cli
from tracejudge.stats.compare import INSUFFICIENT, PASSED, REGRESSED, paired_comparison


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def row(summary: str, start: str) -> str:
    """The one summary line starting with `start`."""
    (line,) = [line for line in summary.splitlines() if line.startswith(start)]
    return line


def junit_counts(path: Path) -> tuple[ET.Element, dict[str, int]]:
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite" and suite.get("name") == "tracejudge.gate"
    cases = suite.findall("testcase")
    found = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
             "skipped": sum(c.find("skipped") is not None for c in cases), "errors": 0}
    assert {k: int(suite.get(k, "-1")) for k in found} == found  # the attributes count what the suite holds
    return suite, found


# --- the statistics ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seed", "shift"), [(1, -0.05), (2, 0.0), (3, 0.03), (4, -0.2)])
def test_paired_comparison_equals_scipy_ttest_rel_and_its_interval(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    before = rng.uniform(0.3, 1.0, size=40)
    after = np.clip(before + shift + rng.normal(0, 0.1, size=40), 0, 1)
    baseline = {f"g-{i}": float(s) for i, s in enumerate(before)} | {"only-in-baseline": 0.9}
    current = {f"g-{i}": float(s) for i, s in enumerate(after)} | {"only-in-current": 0.1}
    result = paired_comparison(baseline, current)
    one_sided = scipy_stats.ttest_rel(after, before, alternative="less")
    low, high = scipy_stats.ttest_rel(after, before).confidence_interval(0.95)
    assert result.n == 40
    assert result.p_worse == pytest.approx(one_sided.pvalue, rel=1e-9)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert result.delta == pytest.approx(float(np.mean(after - before)), rel=1e-12)
    assert (result.baseline_mean, result.current_mean) == (pytest.approx(before.mean()), pytest.approx(after.mean()))


def test_a_significant_drop_below_the_minimum_delta_passes() -> None:
    rng = np.random.default_rng(5)
    before = {f"g-{i}": 0.8 for i in range(200)}
    after = {i: s - 0.01 + float(rng.normal(0, 0.01)) for i, s in before.items()}
    result = paired_comparison(before, after)
    assert result.p_worse is not None and result.p_worse < 1e-6
    assert result.verdict(alpha=0.05, min_delta=0.02) == PASSED
    assert result.verdict(alpha=0.05, min_delta=0.005) == REGRESSED


def test_a_drop_within_the_noise_passes() -> None:
    before = {"a": 0.8, "b": 0.8, "c": 0.8, "d": 0.8}
    result = paired_comparison(before, {"a": 0.5, "b": 1.0, "c": 0.6, "d": 0.95})
    assert result.delta == pytest.approx(-0.0375) and result.p_worse is not None and 0.05 < result.p_worse < 0.5
    assert result.ci_low < 0 < result.ci_high
    assert result.verdict(alpha=0.05, min_delta=0.02) == PASSED
    assert result.verdict(alpha=0.5, min_delta=0.02) == REGRESSED


def test_a_constant_difference_has_no_p_value_and_the_minimum_delta_decides() -> None:
    before = {"a": 0.75, "b": 0.5, "c": 1.0}
    dropped = paired_comparison(before, {k: v - 0.25 for k, v in before.items()})
    assert (dropped.p_worse, dropped.ci_low, dropped.ci_high, dropped.delta) == (None, -0.25, -0.25, -0.25)
    assert dropped.constant_difference
    assert dropped.verdict(alpha=0.05, min_delta=0.02) == REGRESSED
    assert dropped.verdict(alpha=0.05, min_delta=0.3) == PASSED
    assert paired_comparison(before, before).verdict(alpha=0.05, min_delta=0.0) == PASSED


def test_fewer_than_two_pairs_is_insufficient_data() -> None:
    one = paired_comparison({"a": 0.9, "b": 0.9}, {"a": 0.1})
    assert (one.n, one.delta, one.p_worse) == (1, pytest.approx(-0.8), None) and math.isnan(one.ci_low)
    assert one.verdict(alpha=0.05, min_delta=0.02) == INSUFFICIENT
    assert paired_comparison({}, {"a": 0.5}).verdict(alpha=0.05, min_delta=0.02) == INSUFFICIENT


# --- the command, with given scores -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoredSet:
    dataset: str
    baseline: str
    scores: dict[tuple[str, str], float]  # the baseline run's, by (metric, id)


@pytest.fixture
def scored(tmp_path: Path) -> ScoredSet:
    """30 faithfulness and 30 relevancy records, and a baseline written from given scores."""
    rng = np.random.default_rng(11)
    records = [{"id": f"g-{metric[0]}{i:03d}", "query": f"question {i} | with a pipe", "context": f"context {i}",
                "response": f"answer {i}", "metric": metric, "score": 0.1, "feedback": [], "provenance": {}}
               for metric in ("faithfulness", "relevancy") for i in range(30)]
    scores = {(r["metric"], r["id"]): round(float(rng.uniform(0.55, 1.0)), 3) for r in records}
    dataset = write_jsonl(tmp_path / "golden.jsonl", records)
    given = write_jsonl(tmp_path / "baseline-scores.jsonl",
                        [{"id": i, "metric": m, "score": s} for (m, i), s in scores.items()])
    baseline = str(tmp_path / "baseline.json")
    assert cli.main(["gate", "--dataset", dataset, "--baseline", baseline, "--scores", given,
                     "--write-baseline"]) == 0
    written = json.loads(Path(baseline).read_text())
    assert written["scores"]["faithfulness"]["g-f000"] == scores[("faithfulness", "g-f000")]
    assert len(written["dataset"]) == 64 and written["created"]
    return ScoredSet(dataset, baseline, scores)


def gate_with_scores(scored: ScoredSet, tmp_path: Path, scores: dict[tuple[str, str], float | None]
                     ) -> tuple[int, str, Path]:
    given = write_jsonl(tmp_path / "scores.jsonl", [{"id": i, "metric": m, "score": s} for (m, i), s in scores.items()])
    summary, junit = tmp_path / "summary.md", tmp_path / "junit.xml"
    status = cli.main(["gate", "--dataset", scored.dataset, "--baseline", scored.baseline, "--scores", given,
                       "--summary", str(summary), "--junit", str(junit)])
    return status, summary.read_text(), junit


def test_a_significant_drop_in_one_metric_fails_the_gate(scored: ScoredSet, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(12)
    current: dict[tuple[str, str], float | None] = {
        key: max(0.0, s - 0.15 + float(rng.normal(0, 0.05))) if key[0] == "faithfulness" else s
        for key, s in scored.scores.items()}
    current[("relevancy", "g-r007")] = None  # the other tool could not score it
    status, summary, junit = gate_with_scores(scored, tmp_path, current)
    assert status == 1
    assert "significant regression in faithfulness" in summary and summary in capsys.readouterr().out
    assert row(summary, "| faithfulness | 30 |").endswith("| **REGRESSED** |")
    assert row(summary, "| relevancy | 29 |").endswith("| PASS |")
    assert "### Most regressed records" in summary and "question" in summary and "with a pipe" in summary
    assert "\\|" in summary  # a pipe in a query cannot break the table
    assert "relevancy: 1 record(s) not scored in this run, excluded (score is null: g-r007)" in summary
    suite, counts = junit_counts(junit)
    below = sum(s is not None and s < 0.5 for s in current.values())
    assert counts == {"tests": 2 + 60, "failures": 1 + below, "skipped": 1, "errors": 0}
    (regression,) = [c for c in suite.findall("testcase") if c.get("name") == "regression[faithfulness]"]
    failure = regression.find("failure")
    assert failure is not None and "p < 0.001" in (failure.text or "")


def test_no_significant_drop_passes_the_gate(scored: ScoredSet, tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    current: dict[tuple[str, str], float | None] = {
        key: min(1.0, s + 0.01 + float(rng.normal(0, 0.05))) for key, s in scored.scores.items()}
    status, summary, junit = gate_with_scores(scored, tmp_path, current)
    assert status == 0
    assert summary.startswith("## ✅ tracejudge gate: no significant regression")
    assert "| metric | n | baseline | current | delta | 95% CI | p (worse) |" in summary
    _, counts = junit_counts(junit)
    assert counts == {"tests": 62, "failures": sum(s is not None and s < 0.5 for s in current.values()),
                      "skipped": 0, "errors": 0}


def test_a_run_that_scored_nothing_cannot_pass(scored: ScoredSet, tmp_path: Path) -> None:
    """A judge that is down must not let every change through: exit 2, with the summary saying why."""
    status, summary, junit = gate_with_scores(scored, tmp_path, dict.fromkeys(scored.scores))
    assert status == 2 and summary.startswith("## ⚠️ tracejudge gate: not enough data")
    assert row(summary, "| faithfulness | 0 |").endswith(f"| {INSUFFICIENT} |")
    _, counts = junit_counts(junit)
    assert counts == {"tests": 62, "failures": 0, "skipped": 62, "errors": 0}


def test_a_missing_baseline_says_how_to_make_one(scored: ScoredSet, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["gate", "--dataset", scored.dataset, "--baseline", str(tmp_path / "nowhere.json"),
                       "--scores", scored.dataset])
    assert status == 2
    assert "nowhere.json: no baseline there; run `tracejudge gate --write-baseline`" in capsys.readouterr().err


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "not JSON"),
    ('{"id": "g-3", "query": "q", "context": "c", "metric": "toxicity"}', "unknown metric 'toxicity'"),
    ('{"id": "g-3", "context": "c", "metric": "relevancy"}', "missing `query`"),
])
def test_a_bad_dataset_line_is_named(scored: ScoredSet, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     line: str, message: str) -> None:
    lines = Path(scored.dataset).read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:2], line, *lines[2:]]) + "\n")
    status = cli.main(["gate", "--dataset", str(bad), "--baseline", scored.baseline, "--scores", scored.dataset])
    assert status == 2
    assert f"{bad}:3: {message}" in capsys.readouterr().err


# --- a real run: the configured embedded judge on a handwritten golden set ---------------------------------------

GOLDEN = [  # (query, context, an answer that invents facts)
    ("Who designed the Eiffel Tower?",
     "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris. It is named after the engineer "
     "Gustave Eiffel, whose company designed and built the tower from 1887 to 1889 for the 1889 World's Fair.",
     "The Eiffel Tower was designed by Leonardo da Vinci in 1650 as a lighthouse for the port of Marseille."),
    ("How do plants make sugar?",
     "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to produce glucose "
     "and oxygen. It takes place in the chloroplasts, which contain the pigment chlorophyll.",
     "Plants make sugar by absorbing it from volcanic soil through their roots at night, using the mineral zirconium."),
    ("Who created Python?",
     "Python is a high-level programming language created by Guido van Rossum and first released in 1991. Its design "
     "emphasises code readability, notably through significant indentation.",
     "Python was created by Bill Gates at Microsoft in 2005 as a replacement for Excel macros."),
    ("How tall is Mount Everest?",
     "Mount Everest, on the border between Nepal and China, is Earth's highest mountain above sea level. Its "
     "elevation of 8,849 metres was established by a Chinese and Nepali survey in 2020.",
     "Mount Everest is 3,200 metres tall and was first measured by Roman engineers in 45 BC."),
    ("What did Marie Curie win?",
     "Marie Curie was a Polish and naturalised-French physicist and chemist. She was the first woman to win a Nobel "
     "Prize, and the only person to win Nobel Prizes in two scientific fields, physics in 1903 and chemistry in 1911.",
     "Marie Curie won an Olympic gold medal in rowing in 1924 and an Academy Award for best director."),
    ("How long is the Amazon river?",
     "The Amazon River in South America is the largest river by discharge volume of water in the world. It is about "
     "6,400 kilometres long and flows into the Atlantic Ocean.",
     "The Amazon River is 90 kilometres long and flows into the Arctic Ocean near Greenland."),
    ("When does the shop open?", "", "The shop opens at 4 a.m. on Christmas Day only."),  # no context: unjudged
]
RELEVANCY = ("How tall is Mount Everest?", "Mount Everest is 8,849 metres tall.",
             "The Sahara is the largest hot desert in the world.")

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  llm_extract:
  judge_queue:
    storage: file_storage
    judges:
      local:
        judge: embedded
exporters:
  debug:
extensions:
  file_storage:
    directory: "{data}"
service:
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, judge_queue]
      exporters: [debug]
"""


@dataclass(frozen=True)
class JudgedRuns:
    baseline: dict[str, Any]
    bad: tuple[int, str, Path]  # exit status, summary, JUnit file
    good: tuple[int, str, Path]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> JudgedRuns:
    """A baseline from answers that copy the context, then the gate over invented answers and over the good ones."""
    tmp = tmp_path_factory.mktemp("gate")
    config = tmp / "otel-config.yaml"
    config.write_text(CONFIG.format(data=tmp / "data"))
    records = [{"id": f"g-{i:012x}", "query": q, "context": c, "response": bad, "metric": "faithfulness",
                "expected_output": None, "score": 0.1, "feedback": ["made up"], "provenance": {"trace_id": "0" * 32}}
               for i, (q, c, bad) in enumerate(GOLDEN)]
    records.append({"id": "g-00000000relv", "query": RELEVANCY[0], "context": "", "response": RELEVANCY[2],
                    "metric": "relevancy"})
    dataset = write_jsonl(tmp / "golden.jsonl", records)
    good = write_jsonl(tmp / "good.jsonl", [{"id": r["id"], "response": r["context"] or RELEVANCY[1]}
                                            for r in records])
    bad = write_jsonl(tmp / "bad.jsonl", [{"id": r["id"], "response": r["response"]} for r in records])
    baseline = tmp / "baseline.json"
    common = ["gate", "--dataset", dataset, "--baseline", str(baseline), "--config", str(config)]
    assert cli.main([*common, "--outputs", good, "--write-baseline"]) == 0

    def gate(name: str, outputs: str) -> tuple[int, str, Path]:
        summary, junit = tmp / f"{name}.md", tmp / f"{name}.xml"
        status = cli.main([*common, "--outputs", outputs, "--summary", str(summary), "--junit", str(junit)])
        return status, summary.read_text(), junit

    return JudgedRuns(json.loads(baseline.read_text()), gate("bad", bad), gate("good", good))


def test_the_baseline_holds_the_judged_scores_and_leaves_out_the_unjudged(judged: JudgedRuns) -> None:
    faithfulness = judged.baseline["scores"]["faithfulness"]
    assert len(faithfulness) == 6 and "g-000000000006" not in faithfulness  # no context: never a made-up score
    assert all(0 <= s <= 1 for s in faithfulness.values())
    assert list(judged.baseline["scores"]["relevancy"]) == ["g-00000000relv"]
    # the configured judge_version, then the embedded model's own (a new model is a new judge)
    assert judged.baseline["judge_version"] == f"1+m-{model_version().rsplit('@', 1)[1][:8]}"


def test_invented_answers_fail_the_gate(judged: JudgedRuns) -> None:
    status, summary, junit = judged.bad
    assert status == 1
    assert summary.startswith("## ❌ tracejudge gate: significant regression in faithfulness")
    assert row(summary, "| faithfulness | 6 |").endswith("| **REGRESSED** |")
    assert row(summary, "| relevancy | 1 |").endswith(f"| {INSUFFICIENT} |")
    assert "faithfulness: 1 record(s) not scored in this run, excluded (no_context: g-000000000006)" in summary
    most = summary.split("### Most regressed records")[1]
    assert len([line for line in most.splitlines() if line.startswith(("| faithfulness | `", "| relevancy | `"))]) == 5
    suite, counts = junit_counts(junit)
    assert counts["tests"] == 2 + 8 and counts["skipped"] == 2  # relevancy: insufficient data; g-…6: unjudged
    names = {c.get("name"): c for c in suite.findall("testcase")}
    assert names["regression[faithfulness]"].find("failure") is not None
    assert names["faithfulness[g-000000000006]"].find("skipped") is not None
    assert names["regression[relevancy]"].find("skipped") is not None


def test_the_same_good_answers_pass_the_gate(judged: JudgedRuns) -> None:
    status, summary, junit = judged.good
    assert status == 0
    assert summary.startswith("## ✅ tracejudge gate: no significant regression")
    faithfulness = row(summary, "| faithfulness | 6 |")
    assert "| +0.000 | [+0.000, +0.000] | n/a |" in faithfulness and faithfulness.endswith("| PASS |")
    assert "every paired difference is +0.000" in summary and "Most regressed" not in summary
    _, counts = junit_counts(junit)
    assert counts["tests"] == 10 and counts["failures"] == sum(
        s < 0.5 for by_id in judged.baseline["scores"].values() for s in by_id.values())


def test_a_judge_failing_on_many_records_cannot_let_a_drop_through(scored: ScoredSet, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """All faithfulness records but one unscored, that one unchanged: no verdict, exit 2."""
    current: dict[tuple[str, str], float | None] = dict(scored.scores)
    faithfulness = sorted(i for m, i in scored.scores if m == "faithfulness")
    for record_id in faithfulness[1:]:
        current[("faithfulness", record_id)] = None
    status, summary, _ = gate_with_scores(scored, tmp_path, current)
    assert status == 2 and "faithfulness: 29 record(s) not scored in this run" in summary
    assert "faithfulness: 97% of the records the baseline scored" in capsys.readouterr().err
