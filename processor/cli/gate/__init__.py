"""`tracejudge gate`: a CI gate over a golden dataset. Scores the candidate (judging its answers with the configured
judges, or reading given scores), compares each metric with a baseline run by a paired t-test over the ids scored in
both (stats.compare.paired_comparison) and exits 1 on a significant regression, 2 when it cannot tell.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tracejudge.judge.adaptation import Adaptation
from tracejudge.judge.adaptation_store import AdaptationStore
from tracejudge.judge.cascade import Cascade, CascadeItem
from tracejudge.judge.tiers import build_judges, effective_judge_version, resolve_adaptations
from tracejudge.judge.verdict import METRICS, JudgeInput
from tracejudge.processor.cli.gate.report import GateResult, MetricResult, RecordResult, junit, markdown
from tracejudge.processor.component.errors import ConfigError, PermanentError
from tracejudge.processor.processors.judge_queue.config import JudgeQueueStageConfig
from tracejudge.processor.processors.judge_queue.stores import StageStores
from tracejudge.processor.service.config import config_or_report
from tracejudge.stats.compare import REGRESSED, paired_comparison

BATCH = 64  # records per cascade call
MAX_LOST = 0.1  # of the records the baseline scored, left unscored by this run before the gate refuses to decide
HINT = "run `tracejudge gate --write-baseline` (same dataset and judges) on the main branch first to create it"


class InputError(PermanentError):
    """A file the gate cannot use (exit status 2); the message names the file, and the line where there is one."""


@dataclass(frozen=True)
class GoldenRecord:
    id: str
    metric: str
    query: str
    context: str
    response: str | None  # None when the record has none: --outputs or --scores supply what is judged


@dataclass(frozen=True)
class RunScores:
    """One run: scores by metric and id, and the records it could not score, by metric and id, with why."""

    scores: dict[str, dict[str, float]]
    unjudged: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Baseline:
    created: str
    dataset: str  # sha256 of the dataset file it was computed on
    judge_version: str
    scores: dict[str, dict[str, float]]


def read_jsonl(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """("path:line", object) for every non-blank line."""
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{where}: not JSON ({e.msg}); write one JSON object per line") from e
                if not isinstance(record, dict):
                    raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
                yield where, record
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read it as UTF-8 text: {e}") from e


def _field(record: dict[str, Any], key: str, where: str) -> str:
    if key not in record:
        raise InputError(f"{where}: missing `{key}`")
    value = record[key]
    if key == "id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if key == "context" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n\n".join(value)
    if value is None and key != "id":
        return ""
    if not isinstance(value, str):
        raise InputError(f"{where}: `{key}` must be a string, not {type(value).__name__}")
    return value


def _metric(record: dict[str, Any], where: str) -> str:
    metric = record.get("metric")
    if metric not in METRICS:
        raise InputError(f"{where}: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return str(metric)


def read_dataset(path: str, needs_response: bool) -> list[GoldenRecord]:
    records: dict[str, GoldenRecord] = {}
    lines: dict[str, str] = {}
    for where, raw in read_jsonl(path):
        record_id = _field(raw, "id", where)
        if record_id in records:
            raise InputError(f"{where}: id {record_id!r} is already used at {lines[record_id]}; ids must be unique")
        if needs_response and "response" not in raw:
            raise InputError(f"{where}: no `response` to judge; give the candidate's with --outputs (or --scores)")
        response = _field(raw, "response", where) if "response" in raw else None
        records[record_id] = GoldenRecord(record_id, _metric(raw, where), _field(raw, "query", where),
                                          _field(raw, "context", where), response)
        lines[record_id] = where
    if not records:
        raise InputError(f"{path}: no records; export some with `tracejudge golden export`")
    return list(records.values())


def read_outputs(path: str) -> dict[str, str]:
    """The candidate's responses by id."""
    responses: dict[str, str] = {}
    for where, raw in read_jsonl(path):
        record_id = _field(raw, "id", where)
        if record_id in responses:
            raise InputError(f"{where}: a second response for id {record_id!r}; give one per id")
        responses[record_id] = _field(raw, "response", where)
    return responses


def read_scores(path: str) -> dict[tuple[str, str], float | None]:
    """Given scores by (metric, id); None for a record the other tool could not score."""
    scores: dict[tuple[str, str], float | None] = {}
    for where, raw in read_jsonl(path):
        key = _metric(raw, where), _field(raw, "id", where)
        if "score" not in raw:
            raise InputError(f"{where}: missing `score` (null for a record that could not be scored)")
        score = raw["score"]
        if score is not None and not (isinstance(score, int | float) and not isinstance(score, bool)
                                      and 0 <= score <= 1):
            raise InputError(f"{where}: `score` must be a number in [0, 1] (1 = good) or null, not {score!r}")
        if key in scores:
            raise InputError(f"{where}: a second {key[0]} score for id {key[1]!r}; give one per id and metric")
        scores[key] = None if score is None else float(score)
    return scores


def given_scores(records: Sequence[GoldenRecord], scores: Mapping[tuple[str, str], float | None]) -> RunScores:
    run = RunScores({m: {} for m in METRICS}, {m: {} for m in METRICS})
    for record in records:
        score = scores.get((record.metric, record.id))
        if score is None:
            why = "no score given" if (record.metric, record.id) not in scores else "score is null"
            run.unjudged[record.metric][record.id] = why
        else:
            run.scores[record.metric][record.id] = score
    return run


async def judge_records(records: Sequence[GoldenRecord], responses: Mapping[str, str] | None,
                        cascade: Cascade) -> RunScores:
    """Judges each record's query and context with its own response, or with `responses[id]` when given."""
    run = RunScores({m: {} for m in METRICS}, {m: {} for m in METRICS})
    todo: list[tuple[GoldenRecord, JudgeInput]] = []
    for record in records:
        response = record.response if responses is None else responses.get(record.id)
        if response is None:
            run.unjudged[record.metric][record.id] = "no_output"
        else:
            todo.append((record, JudgeInput(record.metric, record.query, response, record.context)))
    with tqdm(total=len(todo), desc="judging", unit="record", file=sys.stderr, disable=None) as progress:
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            results = await cascade.judge([CascadeItem(item) for _, item in batch])
            for (record, _), result in zip(batch, results, strict=True):
                verdict = result.verdict
                if verdict.score is None:
                    run.unjudged[record.metric][record.id] = verdict.error_type or "unjudged"
                else:
                    run.scores[record.metric][record.id] = verdict.score
            progress.update(len(batch))
    return run


def read_baseline(path: str) -> Baseline:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"{path}: no baseline there; {HINT}") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read the baseline ({e}); {HINT}") from e
    scores = document.get("scores") if isinstance(document, dict) else None
    if not (isinstance(scores, dict) and all(
            isinstance(by_id, dict) and all(isinstance(s, int | float) and math.isfinite(s) for s in by_id.values())
            for by_id in scores.values())):
        raise InputError(f"{path}: not a gate baseline (it needs `scores`: {{metric: {{id: score}}}}); {HINT}")
    return Baseline(str(document.get("created", "")), str(document.get("dataset", "")),
                    str(document.get("judge_version", "")),
                    {str(m): {str(i): float(s) for i, s in by_id.items()} for m, by_id in scores.items()})


def baseline_json(baseline: Baseline) -> str:
    return json.dumps(dataclasses.asdict(baseline), indent=1, sort_keys=True) + "\n"


def compare(records: Sequence[GoldenRecord], baseline: Mapping[str, Mapping[str, float]], run: RunScores,
            threshold: float, alpha: float, min_delta: float) -> tuple[list[MetricResult], list[str]]:
    """Per metric of the dataset: the paired comparison and its verdict; and notes on what was left out."""
    results: list[MetricResult] = []
    notes: list[str] = []
    for metric in [m for m in METRICS if any(r.metric == m for r in records)]:
        ids = [r.id for r in records if r.metric == metric]
        before = {i: baseline[metric][i] for i in ids if i in baseline.get(metric, {})}
        after = {i: run.scores[metric][i] for i in ids if i in run.scores[metric]}
        comparison = paired_comparison(before, after)
        paired = before.keys() & after.keys()
        results.append(MetricResult(metric, comparison, comparison.verdict(alpha, min_delta),
                                    sum(before[i] >= threshold for i in paired),
                                    sum(after[i] >= threshold for i in paired)))
        unjudged = run.unjudged[metric]
        if unjudged:
            reasons = sorted(set(unjudged.values()))
            notes.append(f"{metric}: {len(unjudged)} record(s) not scored in this run, excluded ("
                         + "; ".join(f"{why}: {', '.join(sorted(i for i, w in unjudged.items() if w == why))}"
                                     for why in reasons) + ")")
        if len(after) > len(paired):
            notes.append(f"{metric}: {len(after) - len(paired)} record(s) scored in this run have no baseline score "
                         "(new in the dataset, or not scored when the baseline was written), excluded")
        if comparison.n < 2:
            notes.append(f"{metric}: {comparison.n} record(s) scored in both runs; a paired test needs at least 2")
        elif comparison.constant_difference:
            outcome = "a regression" if comparison.verdict(alpha, min_delta) == REGRESSED else "not a regression"
            notes.append(f"{metric}: every paired difference is {comparison.delta:+.3f}, so there is no variance and "
                         f"no p-value; judged by the minimum delta alone ({min_delta}): {outcome}")
    return results, notes


def record_results(records: Sequence[GoldenRecord], baseline: Mapping[str, Mapping[str, float]],
                   run: RunScores) -> list[RecordResult]:
    return [RecordResult(r.metric, r.id, r.query, baseline.get(r.metric, {}).get(r.id),
                         run.scores[r.metric].get(r.id), run.unjudged[r.metric].get(r.id, "")) for r in records]


def add_arguments(gate: argparse.ArgumentParser) -> None:
    gate.description = ("Exit status: 0 no significant regression, 1 a significant regression in some metric, 2 bad "
                        "usage or input.")
    gate.add_argument("--dataset", required=True, help="golden JSONL records: id, query, context, metric, response")
    gate.add_argument("--baseline", required=True, help="baseline JSON, written by a run with --write-baseline")
    source = gate.add_mutually_exclusive_group()
    source.add_argument("--outputs", help="JSONL {id, response}: the candidate's answers to the golden queries, "
                        "judged instead of the dataset's own responses")
    source.add_argument("--scores", help="JSONL {id, metric, score}: scores from elsewhere, instead of judging")
    gate.add_argument("--config", help="judge with this config's judge_queue judges (default: otel-config.yaml)")
    gate.add_argument("--judge-queue", metavar="NAME", help="the judge_queue processor whose judges to use, when "
                      "the config has several")
    gate.add_argument("--write-baseline", action="store_true", help="write this run's scores as the baseline "
                      "(exit 0) instead of comparing")
    gate.add_argument("--summary", metavar="FILE", help="append the markdown summary (also printed) to FILE, e.g. "
                      "$GITHUB_STEP_SUMMARY")
    gate.add_argument("--junit", metavar="FILE", help="write JUnit XML: a test per metric and per record")
    gate.add_argument("--alpha", type=_fraction, default=0.05, help="one-sided significance level "
                      "(default: %(default)s)")
    gate.add_argument("--min-delta", type=_fraction, default=0.02, help="smaller mean drops never fail the gate "
                      "(default: %(default)s)")
    gate.add_argument("--threshold", type=_fraction, default=0.5, help="a record passes at this score or above "
                      "(default: %(default)s)")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # fails the range check
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number in [0, 1]")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        return _gate(args)
    except InputError as e:
        print(f"tracejudge gate: {e}", file=sys.stderr)
        return 2


def _gate(args: argparse.Namespace) -> int:
    if args.scores and (args.config or args.judge_queue):
        raise InputError("--config and --judge-queue choose the judges; with --scores nothing is judged: drop them")
    records = read_dataset(args.dataset, needs_response=not (args.outputs or args.scores))
    baseline = None if args.write_baseline else read_baseline(args.baseline)
    scored = _score(args, records)
    if scored is None:
        return 2
    run_scores, judge_version, source = scored
    digest = hashlib.sha256(Path(args.dataset).read_bytes()).hexdigest()
    metrics: list[MetricResult] = []
    if baseline is None:
        if not any(run_scores.scores.values()):
            why = sorted({w for by_id in run_scores.unjudged.values() for w in by_id.values()})
            raise InputError(f"{args.dataset}: not one record was scored ({', '.join(why)}); fix the judges or the "
                             "scores first: an empty baseline would let every later run pass")
        written = Baseline(datetime.now(UTC).isoformat(timespec="seconds"), digest, judge_version,
                           {m: s for m, s in run_scores.scores.items() if s})
        _write(args.baseline, baseline_json(written), "w")
        notes = [f"baseline written to {args.baseline}: keep it (commit or cache it) for the gate runs of branches"]
    else:
        metrics, notes = compare(records, baseline.scores, run_scores, args.threshold, args.alpha, args.min_delta)
        notes += _provenance_notes(baseline, digest, judge_version)
    result = GateResult(args.dataset, source, args.baseline, baseline.created if baseline else "", tuple(metrics),
                        tuple(record_results(records, baseline.scores if baseline else {}, run_scores)),
                        tuple(notes), args.threshold, args.alpha, args.min_delta)
    summary = markdown(result)
    print(summary, end="")
    if args.summary:
        _write(args.summary, summary, "a")  # appended: GitHub's step summary file may hold other steps' output
    if args.junit:
        _write(args.junit, junit(result), "w")
    lost = lost_share(records, baseline.scores, run_scores) if baseline is not None else {}
    if baseline is not None and (not any(run_scores.scores.values()) or lost):
        what = (", ".join(f"{metric}: {share:.0%} of the records the baseline scored" for metric, share in lost.items())
                or "every record")
        print(f"tracejudge gate: not scored in this run ({what}; see the summary): the gate cannot tell whether "
              "quality held; fix the judges or the scores", file=sys.stderr)
        return 2  # a judge that is down must not let every change through
    return 1 if result.regressed else 0


def lost_share(records: Sequence[GoldenRecord], baseline: Mapping[str, Mapping[str, float]], run: RunScores
               ) -> dict[str, float]:
    """Per metric, the share of the records the baseline scored that this run could not score, where it is over
    MAX_LOST: a judge that fails on the hard records must not make a candidate pass by leaving them out."""
    lost = {}
    for metric in {r.metric for r in records}:
        scored_before = [r.id for r in records if r.metric == metric and r.id in baseline.get(metric, {})]
        missing = [i for i in scored_before if i not in run.scores[metric]]
        if scored_before and len(missing) / len(scored_before) > MAX_LOST:
            lost[metric] = len(missing) / len(scored_before)
    return dict(sorted(lost.items()))


def _score(args: argparse.Namespace, records: Sequence[GoldenRecord]) -> tuple[RunScores, str, str] | None:
    """(this run's scores, the judge_version that gave them, where they come from); None if the config is bad."""
    if args.scores:
        return given_scores(records, read_scores(args.scores)), "", f"given in {args.scores}"
    found = _judge_stage(args.config or "otel-config.yaml", args.judge_queue)
    if found is None:
        return None
    name, stage, stores = found
    # the judges serve judges with: an installed adaptation the config names is theirs too
    try:
        adaptations = resolve_adaptations(stage.judges, lambda: AdaptationStore(stores.adaptations(read_only=True)),
                                          f"processors.{name}.judges")
    except ConfigError as e:
        raise InputError(str(e)) from e
    version = effective_judge_version(stage.judge_version, stage.judges, adaptations)
    responses = read_outputs(args.outputs) if args.outputs else None
    judged = f"responses in {args.outputs}" if args.outputs else "the dataset's own responses"
    return (asyncio.run(_judge(records, responses, stage, adaptations)), version,
            f"{judged}, judged by the configured judges (judge_version {version})")


def _judge_stage(config_path: str, name: str | None) -> tuple[str, JudgeQueueStageConfig, StageStores] | None:
    config = config_or_report(config_path)
    if config is None:
        return None
    stages = {n: s for n, s in config.processors.items() if isinstance(s, JudgeQueueStageConfig)}
    if name is None and len(stages) == 1:
        name = next(iter(stages))
    if name is None or name not in stages:
        raise InputError(f"{config_path}: the gate judges with the judges of one judge_queue processor; name one "
                         f"with --judge-queue (this config has: {', '.join(sorted(stages)) or 'none'})")
    stage = stages[name]
    return name, stage, StageStores(name, config.extensions[stage.storage])


async def _judge(records: Sequence[GoldenRecord], responses: Mapping[str, str] | None,
                 stage: JudgeQueueStageConfig, adaptations: Mapping[str, Adaptation]) -> RunScores:
    judges = build_judges(stage.judges, None, adaptations)
    try:
        return await judge_records(records, responses, judges.cascade)
    finally:
        await judges.close()


def _provenance_notes(baseline: Baseline, digest: str, judge_version: str) -> list[str]:
    notes = []
    if baseline.dataset != digest:
        notes.append("the dataset changed since the baseline was written: records are paired by id")
    if baseline.judge_version != judge_version:
        notes.append(f"the baseline was scored with judge_version {baseline.judge_version or '(given scores)'!r}, "
                     f"this run with {judge_version or '(given scores)'!r}: differences may come from the judges")
    return notes


def _write(path: str, text: str, mode: str) -> None:
    try:
        with open(path, mode, encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise InputError(f"{path}: cannot write it ({e.strerror}); check the directory exists and is writable") from e
