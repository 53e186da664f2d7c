"""How well the embedded judge separates good from bad responses on every judge-dev file, next to trivial floors.

Per file (context-free sets apart): AUROC, balanced accuracy and F1 at the judge's pass threshold (detecting bad
responses), expected calibration error, and judgements/s. Floors: response length (shorter = better, the shortcut
the data's README warns about) and word overlap with the context, their threshold at the file's median score (they
have no threshold of their own; the median flatters them). Reads ../shared/data/judge-dev (or
$TRACEJUDGE_JUDGE_DATA/judge-dev); never trains on it. Run: `python -m bench.judge_quality`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tracejudge.judge.lexical import THRESHOLD, LexicalJudge, content_words
from tracejudge.judge.quality import at_threshold, auroc, expected_calibration_error
from tracejudge.judge.training.data import LabelledRecord, read_records
from tracejudge.judge.verdict import Judge, JudgeInput

DATA = Path(os.environ.get("TRACEJUDGE_JUDGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def length_floor(records: Sequence[LabelledRecord]) -> list[float]:
    """Shorter responses score higher: 1 / (1 + words)."""
    return [1 / (1 + len(r.response.split())) for r in records]


def overlap_floor(records: Sequence[LabelledRecord]) -> list[float]:
    """The share of the response's content words found in the context (or the query, without a context)."""
    scores = []
    for r in records:
        words = content_words(r.response)
        source = content_words(r.context or r.query)
        scores.append(len(words & source) / len(words) if words else 1.0)
    return scores


async def judge_scores(judge: Judge, records: Sequence[LabelledRecord]) -> tuple[list[float | None], float]:
    """The judge's faithfulness scores (relevancy where there is no context), and judgements per second."""
    inputs = [JudgeInput("faithfulness" if r.context.strip() else "relevancy", r.query, r.response, r.context)
              for r in records]
    started = time.perf_counter()
    verdicts = []
    for start in range(0, len(inputs), 32):
        verdicts += await judge.judge(inputs[start:start + 32])
    elapsed = time.perf_counter() - started
    return [v.score for v in verdicts], len(inputs) / elapsed


def row(name: str, scores: Sequence[float | None], labels: Sequence[int], threshold: float,
        calibrated: bool) -> str:
    kept = [(s, label) for s, label in zip(scores, labels, strict=True) if s is not None]
    if len({label for _, label in kept}) < 2:
        return f"    {name:<18} n/a (judged {len(kept)} of {len(labels)})"
    s, y = [k[0] for k in kept], [k[1] for k in kept]
    at = at_threshold(s, y, threshold)
    ece = f"{expected_calibration_error(s, y):.3f}" if calibrated else "  -  "
    unjudged = f"  ({len(labels) - len(kept)} unjudged)" if len(kept) < len(labels) else ""
    return (f"    {name:<18} AUROC {auroc(s, y):.3f}  bal.acc {at.balanced_accuracy:.3f}  F1 {at.f1:.3f}  "
            f"ECE {ece}{unjudged}")


async def run(directory: Path, judge: Judge, judge_name: str) -> None:
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        sys.exit(f"no judge-dev files in {directory}: set TRACEJUDGE_JUDGE_DATA to the directory holding judge-dev/")
    print(f"judge quality on {directory} (label 1 = bad; scores 1 = good; threshold {THRESHOLD} for {judge_name})")
    for with_context in (True, False):
        print("\nsets with a context (faithfulness)" if with_context else
              "\nsets without a context (world-knowledge truthfulness: judged on relevancy, not expected to work)")
        for path in files:
            records = read_records(path)
            if any(r.context.strip() for r in records) != with_context:
                continue
            labels = [r.label for r in records]
            scores, per_s = await judge_scores(judge, records)
            print(f"  {path.name} (n={len(records)}, bad {sum(labels) / len(labels):.0%}); "
                  f"{judge_name}: {per_s:,.0f} judgements/s")
            floors: list[tuple[str, Callable[[Sequence[LabelledRecord]], list[float]]]] = [
                ("response length", length_floor), ("word overlap", overlap_floor)]
            for name, floor in floors:
                print(row(name, floor(records), labels, sorted(floor(records))[len(records) // 2], False))
            print(row(judge_name, scores, labels, THRESHOLD, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA / "judge-dev")
    args = parser.parse_args()
    asyncio.run(run(args.data, LexicalJudge(), "embedded judge"))


if __name__ == "__main__":
    main()
