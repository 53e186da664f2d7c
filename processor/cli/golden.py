"""`tracejudge golden export`: production failures as a golden dataset, so the same failure cannot ship twice.

A confirmed failure is a judged LLM span whose score is below `--max-score` in a trace users were unhappy with
(thumbs down, a low rating, an edit, a regeneration); `--without-feedback` also takes low scores nobody complained
about. Records are deduplicated on (metric, query, context): the lowest-scoring occurrence is kept, with every
occurrence's traces and feedback in its provenance. They are written as JSONL (`tracejudge gate` and `tracejudge
judge` read it) and, with `--deepeval`, as a deepeval dataset JSON (EvaluationDataset.add_goldens_from_json_file).
A user's edited answer becomes the expected output.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracejudge.judge.queue import JudgeQueueReader
from tracejudge.processor.cli.config_option import add_config_option
from tracejudge.processor.component.errors import StoreMissing
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.processor.processors.judge_queue.stores import StageStores, stats_stores
from tracejudge.processor.service.config import config_or_report
from tracejudge.stats.records import Evaluation
from tracejudge.stats.store import StatsStore


@dataclass
class Golden:
    id: str
    metric: str
    query: str
    context: str
    response: str
    score: float
    expected_output: str | None
    feedback: list[str]
    comments: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "metric": self.metric, "query": self.query, "context": self.context,
                "response": self.response, "expected_output": self.expected_output, "score": self.score,
                "feedback": self.feedback, "comments": self.comments, "provenance": self.provenance}

    def deepeval(self) -> dict[str, Any]:
        return {"input": self.query, "actual_output": self.response, "expected_output": self.expected_output,
                "retrieval_context": [p for p in self.context.split("\n\n") if p.strip()] or None,
                "context": None, "name": self.id, "comments": "; ".join(self.comments) or None,
                "additional_metadata": {"metric": self.metric, "score": self.score, "feedback": self.feedback,
                                        **self.provenance}}


def golden_id(metric: str, query: str, context: str) -> str:
    text = "\0".join(" ".join(part.split()).lower() for part in (metric, query, context))
    return "g-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def failures(store: StatsStore, stores: StageStores, max_score: float, with_feedback: bool) -> list[Golden]:
    """The confirmed failures in one judge stage's stores, deduplicated, worst first."""
    feedback: dict[str, list[Feedback]] = {}
    for record in store.feedback():
        feedback.setdefault(record.trace_id, []).append(record)
    unhappy = {trace for trace, records in feedback.items() if any(r.negative for r in records)}
    groups: dict[str, list[tuple[Evaluation, str, str, str]]] = {}
    with _read_only(stores) as queue:
        for evaluation in _low_scores(store, unhappy if with_feedback else None, max_score):
            content = queue.judged_content(evaluation.span_id, evaluation.metric, evaluation.judge_version) \
                if queue is not None else None
            if content is None:
                continue  # the queue was cleared
            query, response, context = content.query, content.response, content.context
            groups.setdefault(golden_id(evaluation.metric, query, context), []).append(
                (evaluation, query, response, context))
    found = [_golden(key, occurrences, feedback) for key, occurrences in groups.items()]
    return sorted(found, key=lambda g: (g.score, g.id))


def _low_scores(store: StatsStore, traces: set[str] | None, max_score: float) -> Iterator[Evaluation]:
    if traces is not None:
        for trace in sorted(traces):
            yield from (e for e in store.trace_evaluations(trace) if e.score < max_score)
        return
    for batch in store.evaluations():
        yield from (e for e in batch if e.score < max_score)


def _golden(key: str, occurrences: list[tuple[Evaluation, str, str, str]],
            feedback: dict[str, list[Feedback]]) -> Golden:
    """One failure from all its occurrences: the worst one's content and provenance, everyone's feedback."""
    e, query, response, context = min(occurrences, key=lambda o: (o[0].score, o[0].time_unix_nano))
    traces = sorted({o[0].trace_id for o in occurrences})
    records = sorted((r for t in traces for r in feedback.get(t, [])), key=lambda r: r.time_unix_nano)
    edits = [r.edited_text for r in records if r.edited_text]
    provenance: dict[str, Any] = {
        "trace_id": e.trace_id, "span_id": e.span_id, "service": e.service, "prompt_version": e.prompt_version,
        "model": e.model, "response_model": e.response_model, "fingerprint": e.fingerprint,
        "judge_version": e.judge_version, "judge_tier": e.tier, "judge_model": e.judge_model,
        "stratum": e.stratum, "time": _iso(e.time_unix_nano), "occurrences": len(occurrences), "trace_ids": traces}
    return Golden(key, e.metric, query, context, response, e.score, edits[-1] if edits else None,
                  sorted({r.reason for r in records if r.negative}), [r.comment for r in records if r.comment],
                  provenance)


@contextlib.contextmanager
def _read_only(stores: StageStores) -> Iterator[JudgeQueueReader | None]:
    try:
        reader = JudgeQueueReader(stores.queue(read_only=True))
    except StoreMissing:
        yield None
        return
    try:
        yield reader
    finally:
        reader.close()


def _iso(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, UTC).isoformat(timespec="seconds")


def add_arguments(golden: argparse.ArgumentParser) -> None:
    actions = golden.add_subparsers(dest="golden_command", required=True)
    export = actions.add_parser("export", help="write confirmed failures (judged, low score, negative feedback) "
                                "as a deduplicated dataset with provenance")
    add_config_option(export)
    export.add_argument("--out", required=True, help="the JSONL dataset to write (read by tracejudge gate)")
    export.add_argument("--deepeval", help="also write this deepeval dataset JSON file")
    export.add_argument("--max-score", type=float, default=0.5, help="a failure scored below this "
                        "(default: %(default)s)")
    export.add_argument("--without-feedback", action="store_true",
                        help="also take low scores in traces without negative feedback")


def run(args: argparse.Namespace) -> int:
    """`golden export` (the only action so far)."""
    config = config_or_report(args.config)
    if config is None:
        return 2
    goldens: dict[str, Golden] = {}
    for _, stage_stores, _ in stats_stores(config):
        try:
            store = StatsStore(stage_stores.stats(read_only=True))
        except StoreMissing:
            continue
        try:
            for golden in failures(store, stage_stores, args.max_score, not args.without_feedback):
                goldens.setdefault(golden.id, golden)
        finally:
            store.close()
    ordered = sorted(goldens.values(), key=lambda g: (g.score, g.id))
    try:
        with open(args.out, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(g.record(), ensure_ascii=False) + "\n" for g in ordered)
        if args.deepeval:
            Path(args.deepeval).write_text(json.dumps([g.deepeval() for g in ordered], ensure_ascii=False, indent=1),
                                           encoding="utf-8")
    except OSError as e:
        print(f"tracejudge golden export: cannot write: {e}", file=sys.stderr)
        return 1
    kind = "judged failures with negative feedback" if not args.without_feedback else "judged failures"
    print(f"{args.out}: {len(ordered)} {kind} (score < {args.max_score:g}), deduplicated"
          + (f"; deepeval dataset: {args.deepeval}" if args.deepeval else ""))
    return 0
