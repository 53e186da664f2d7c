"""`tracejudge adapt`: refit the embedded judge on the user's own labels, check it on labels it never saw, and install
it as a new judge version only if it is better there (judge/adapting.py states the rule).

Labels: reviewers' verdicts (feedback with `labels`, e.g. from the review page) on judged spans whose content the judge
queue still holds; with `--feedback`, users' thumbs and ratings as labels of their trace's judged spans; and JSONL
files (`--labels`): records with query, context, response and `label` (1 = bad, as in labelled sets) or `passed`,
or a golden set from `tracejudge golden export` (each record a confirmed failure; its expected_output a good answer).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracejudge.judge.adaptation_store import AdaptationStore
from tracejudge.judge.adapting import Labelled, Outcome, fit
from tracejudge.judge.embedded_model import DEFAULT_DIR, loaded, version_of
from tracejudge.judge.embedded_signals import Item
from tracejudge.judge.queue import JudgeQueueReader
from tracejudge.judge.tiers import TierConfig, resolve_adaptations
from tracejudge.processor.cli.config_option import add_config_option
from tracejudge.processor.component.errors import ConfigError, StoreMissing
from tracejudge.processor.processors.judge_queue.config import JudgeQueueStageConfig
from tracejudge.processor.processors.judge_queue.stores import StageStores
from tracejudge.processor.service.config import config_or_report
from tracejudge.stats.store import StatsStore

ADAPTABLE = ("faithfulness", "relevancy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--judge-queue", help="the judge_queue processor whose judge to adapt (needed when the "
                                              "config has several)")
    parser.add_argument("--metric", choices=ADAPTABLE, default="faithfulness")
    parser.add_argument("--labels", action="append", default=[], metavar="FILE",
                        help="a JSONL file of labelled records or a golden set; repeatable")
    parser.add_argument("--no-reviewers", action="store_true", help="leave out reviewers' stored labels")
    parser.add_argument("--feedback", action="store_true",
                        help="also use users' feedback: a trace with a thumbs down, a low rating, an edit or a "
                             "regeneration labels its judged spans bad, a thumbs up or a high rating good (noisier "
                             "than reviewers' labels: it is about the whole answer, not one metric)")
    parser.add_argument("--holdout", type=float, default=0.3, help="share of the labels' groups kept apart to "
                                                                     "check the adaptation (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--min-adapter-labels", type=int, default=200,
                        help="labels to adapt on before an adapter over the embeddings is a candidate "
                             "(default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="report, install nothing")
    parser.add_argument("--report", help="also write the full report (JSON) here")


def run(args: argparse.Namespace) -> int:
    if not 0.05 <= args.holdout <= 0.8:
        return _error("--holdout: must be in [0.05, 0.8]", 2)
    config = config_or_report(args.config)
    if config is None:
        return 2
    stages = {name: settings for name, settings in config.processors.items()
              if isinstance(settings, JudgeQueueStageConfig)}
    name = args.judge_queue or (next(iter(stages)) if len(stages) == 1 else "")
    if name not in stages:
        return _error(f"name the judge_queue processor with --judge-queue (this config has: "
                      f"{', '.join(sorted(stages)) or 'none'})", 2)
    stage = stages[name]
    tier = next((t for t, c in (("local", stage.judges.local), ("heavy", stage.judges.heavy))
                 if c.judge == "embedded"), "")
    if not tier:
        return _error(f"processors.{name}.judges: no tier runs the embedded judge; only it can be adapted", 2)
    tier_config: TierConfig = getattr(stage.judges, tier)
    stores = StageStores(name, config.extensions[stage.storage])
    try:
        current = resolve_adaptations(stage.judges, lambda: AdaptationStore(stores.adaptations()),
                                      f"processors.{name}.judges").get(tier)
        labelled = list(_file_labels(args.labels, args.metric))
        if not args.no_reviewers or args.feedback:
            labelled += _stored_labels(stores, args.metric, not args.no_reviewers, args.feedback)
    except (ConfigError, ValueError, OSError) as e:
        return _error(str(e), 2)
    labelled = _deduplicated(labelled)
    directory = Path(tier_config.model) if tier_config.model else DEFAULT_DIR
    model = loaded(directory)
    base = version_of(model.settings)
    print(f"adapting the {tier} tier's embedded judge ({current.version if current else base}) for {args.metric} "
          f"on {len(labelled)} labels")
    outcome = fit(model, base, args.metric, labelled, current, args.holdout, args.seed, args.min_adapter_labels)
    _print(outcome)
    if args.report:
        Path(args.report).write_text(json.dumps(outcome.report, indent=1) + "\n")
    if outcome.adaptation is None:
        return 1
    if args.dry_run:
        print("--dry-run: nothing installed")
        return 0
    store = AdaptationStore(stores.adaptations())
    try:
        store.install(outcome.adaptation)
    finally:
        store.close()
    key = f"processors.{name}.judges.{tier}.adaptation"
    print(f"installed {outcome.adaptation.version}: "
          + (f"{key} is `latest`: serve and its workers judge with it from their next start"
             if tier_config.adaptation == "latest" else
             f"set {key} to {outcome.adaptation.version} (or `latest`) and restart serve"))
    return 0


def _file_labels(paths: list[str], metric: str) -> Iterator[Labelled]:
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if str(row.get("metric") or metric) != metric:
                        continue
                    yield from _record_labels(row, f"{path}:{number}")
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise ValueError(f"{path}:{number}: not a labelled record or golden record ({e})") from e


def _record_labels(row: dict[str, Any], where: str) -> Iterator[Labelled]:
    query, context = str(row.get("query") or ""), str(row.get("context") or "")
    group = str(row.get("group") or row.get("id") or where)
    if "label" in row:
        label = int(row["label"])
        if label not in (0, 1):
            raise ValueError(f"label {label!r}: 1 (bad) or 0 (good)")
    elif "passed" in row:
        label = 0 if bool(row["passed"]) else 1
    elif "score" in row and "provenance" in row:  # a golden record: a confirmed failure
        label = 1
        if row.get("expected_output"):
            yield Labelled(Item(query, context, str(row["expected_output"])), 0, group, "golden")
    else:
        raise ValueError("no label, passed, or golden-set score")
    yield Labelled(Item(query, context, str(row["response"])), label, group, "golden" if "provenance" in row
                   else "file")


def _stored_labels(stores: StageStores, metric: str, reviewers: bool, feedback: bool) -> list[Labelled]:
    """Labels of judged spans from the statistics' feedback, with the content the judge queue kept for them."""
    try:
        stats = StatsStore(stores.stats(read_only=True))
    except StoreMissing:
        return []
    try:
        queue = JudgeQueueReader(stores.queue(read_only=True))
    except StoreMissing:
        stats.close()
        return []
    found: dict[str, Labelled] = {}
    try:
        records = sorted(stats.feedback(), key=lambda r: r.time_unix_nano)
        for record in records:
            if reviewers and record.labels:
                verdicts = [passed for m, passed in record.labels if m == metric]
                source, label = "reviewer", (0 if verdicts and verdicts[-1] else 1)
            elif feedback and (record.negative or record.positive):
                verdicts = [record.positive]
                source, label = "feedback", 0 if record.positive else 1
            else:
                continue
            if not verdicts:
                continue
            for e in stats.trace_evaluations(record.trace_id):
                if e.metric != metric or (record.span_id and e.span_id != record.span_id):
                    continue
                content = queue.judged_content(e.span_id, metric, e.judge_version)
                earlier = found.get(e.span_id)
                if content is None:
                    continue  # no longer in the queue
                if earlier is not None and earlier.source == "reviewer" and source != "reviewer":
                    continue  # a reviewer's label counts more than a user's reaction
                found[e.span_id] = Labelled(Item(content.query, content.context, content.response), label,
                                            record.trace_id, source)
    finally:
        queue.close()
        stats.close()
    return list(found.values())


def _deduplicated(labelled: list[Labelled]) -> list[Labelled]:
    """One label per (query, context, response): the first given (files, then stored labels)."""
    seen: dict[tuple[str, str, str], Labelled] = {}
    for x in labelled:
        seen.setdefault((x.item.query, x.item.context, x.item.response), x)
    return list(seen.values())


def _print(outcome: Outcome) -> None:
    report = outcome.report
    counts = report["labels"]
    print(f"labels by source: {', '.join(f'{k} {v}' for k, v in report['sources'].items()) or 'none'}; "
          f"adapt on {counts['adapt']['good']} good + {counts['adapt']['bad']} bad, held out "
          f"{counts['held_out']['good']} good + {counts['held_out']['bad']} bad")
    if "held_out" in report:
        candidates = report["candidates (grouped cross-validated AUROC on the adapt share)"]
        print("candidates (grouped 5-fold cross-validated AUROC): "
              + ", ".join(f"{k} {v:.3f}" for k, v in candidates.items())
              + f"; chosen: {report['chosen']['kind']} l2={report['chosen']['l2']:g}")
        held = report["held_out"]
        print(f"{'held out':<16}{'AUROC [95% CI]':<28}balanced accuracy at 0.5 [95% CI]")
        for row, label in (("before", "current judge"), ("after", "adapted judge")):
            r = held[row]
            print(f"{label:<16}{r['auroc']:.3f} [{r['auroc_ci95'][0]:.3f}, {r['auroc_ci95'][1]:.3f}]{'':<8}"
                  f"{r['balanced_accuracy']:.3f} [{r['balanced_accuracy_ci95'][0]:.3f}, "
                  f"{r['balanced_accuracy_ci95'][1]:.3f}]")
        low, high = held["auroc_difference_ci95"]
        print(f"AUROC difference {held['after']['auroc'] - held['before']['auroc']:+.3f} [{low:+.3f}, {high:+.3f}] "
              "(paired bootstrap)")
    print(report["decision"])


def _error(message: str, status: int) -> int:
    print(f"tracejudge adapt: error: {message}", file=sys.stderr)
    return status
