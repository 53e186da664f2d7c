"""How well the embedded judge separates good from bad responses on every judge-dev file, next to trivial floors;
its speed and memory; and what the cascade buys with a heavy judge behind it.

1. Per file (context-free sets apart): AUROC, balanced accuracy and F1 at the judge's pass threshold (detecting bad
   responses), expected calibration error, and judgements/s. Floors: response length (shorter = better, the shortcut
   the data's README warns about) and word overlap with the context, their threshold at the file's median score
   (they have no threshold of their own; the median flatters them). And the judge again with each response set
   against another record's context: how much of its AUROC comes from reading the context (a judge of the
   response's style alone keeps it). And claim pairs built from the file's own contexts (`training.synthetic`: a
   copied context sentence, and the same sentence with one number, name or negation changed): the share of copied
   sentences that pass, and the AUROC of copied against edited — the basic skill of a RAG faithfulness judge.
2. Latency: p50/p99 per call at batch 1 and batch 32 on a mix of the context-bearing files, judgements/s, RSS.
   Speeds swing with the machine's load, so each is also printed per GFLOP/s of a float32 matrix-product reference
   measured in the same run (before and after): that ratio is what to compare between runs and machines.
3. Short grounded answers: one or two sentences of each record's own context as its answer (supported by
   construction): the share that pass at the threshold, per file; and the same answers reworded
   (`training.synthetic.paraphrase`: a reporting phrase in front, a synonym, a contraction — still supported).
   Relevancy: each good record's query with its own answer against another record's good answer (off-topic), per
   file: AUROC and the share of off-topic answers passing.
4. Cascade: the embedded judge in front of a loopback OpenAI-compatible heavy judge that answers right 90% of the
   time (a simulated strong judge: seeded per response), as the uncertainty band widens: the share of items sent to
   the heavy tier against the final AUROC and balanced accuracy.
Reads ../shared/data/judge-dev (or $TRACEJUDGE_JUDGE_DATA/judge-dev); never trains on it. Leave-one-dataset-out is
`bench.judge_lodo`. Run: `python -m bench.judge_quality`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.openai_server import Completion, OpenAiServer
from tracejudge.judge.cascade import Cascade, CascadeConfig, CascadeItem
from tracejudge.judge.embedded import EmbeddedJudge
from tracejudge.judge.embedded_model import DEFAULT_DIR
from tracejudge.judge.embedded_text import sentences
from tracejudge.judge.lexical import content_words
from tracejudge.judge.openai_judge import OpenAiJudge
from tracejudge.judge.quality import at_threshold, auroc, expected_calibration_error
from tracejudge.judge.server_config import OpenAiJudgeConfig
from tracejudge.judge.training.data import LabelledRecord, read_records
from tracejudge.judge.training.synthetic import claim_pairs, paraphrase
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


async def quality(files: Sequence[Path], judge: EmbeddedJudge, judge_name: str, seed: int) -> None:
    print(f"judge quality on {files[0].parent} (label 1 = bad; scores 1 = good; threshold {judge.threshold} for "
          f"{judge_name})")
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
            print(row(judge_name, scores, labels, judge.threshold, True))
            if with_context:
                print(aims(path.name, scores, labels, auroc(overlap_floor(records), labels), judge.threshold))
                # the same responses against the next record's context: a judge that reads the context falls
                # towards 0.5 here; one that judges the response's style alone keeps its AUROC
                swapped = [dataclasses.replace(r, context=records[(i + 1) % len(records)].context)
                           for i, r in enumerate(records)]
                print(row("  ...wrong context", (await judge_scores(judge, swapped))[0], labels, judge.threshold,
                          False))
                pairs = claim_pairs(records[:400], 1.0, seed)
                pair_scores = (await judge_scores(judge, pairs))[0]
                copied = [s for s, p in zip(pair_scores, pairs, strict=True) if p.label == 0 and s is not None]
                edited = [s for s, p in zip(pair_scores, pairs, strict=True) if p.label == 1 and s is not None]
                print(row("  ...claim pairs", pair_scores, [p.label for p in pairs], judge.threshold, False)
                      + f"  ({len(copied)} copied sentences, {_passing(copied, judge.threshold):.0%} pass; "
                        f"{len(edited)} with one edit, {_passing(edited, judge.threshold):.0%} pass)")


def _passing(scores: Sequence[float], threshold: float) -> float:
    return sum(s >= threshold for s in scores) / max(1, len(scores))


def aims(name: str, scores: Sequence[float | None], labels: Sequence[int], overlap_auroc: float,
         threshold: float) -> str:
    """Issue 21's aims for a context-bearing set: AUROC at least 0.80 and at least the word-overlap floor's; on
    HaluEval dialogue, balanced accuracy at least ChatGPT's 72.4 (the HaluEval paper)."""
    kept = [(s, label) for s, label in zip(scores, labels, strict=True) if s is not None]
    s, y = [k[0] for k in kept], [k[1] for k in kept]
    value = auroc(s, y)
    checks = [(f"AUROC {value:.3f} >= 0.80", value >= 0.80),
              (f">= word overlap {overlap_auroc:.3f}", value >= overlap_auroc)]
    if name.startswith("halueval_dialogue"):
        balanced = at_threshold(s, y, threshold).balanced_accuracy * 100
        checks.append((f"bal.acc {balanced:.1f} >= 72.4", balanced >= 72.4))
    return "    aims: " + "; ".join(f"{text} {'met' if met else 'MISSED'}" for text, met in checks)


def off_topic_pairs(records: Sequence[LabelledRecord], seed: int, n: int = 300) -> list[LabelledRecord]:
    """Relevancy pairs from one file, seeded: each of up to `n` good records' query with its own answer (label 0)
    and with the good answer of a record asking something else (label 1, off-topic). No context: relevancy is judged
    on the query. None from a file whose records all share one instruction as their query."""
    good = [r for r in records if r.label == 0 and r.query.strip() and r.response.strip()]
    rng = random.Random(seed)
    rng.shuffle(good)
    good = good[:n]
    pairs = []
    for i, record in enumerate(good):
        # the next answer to another question (none when every record asks the same: "Summarize ...")
        other = next((o for o in good[i + 1:] + good[:i] if o.query.strip() != record.query.strip()), None)
        if other is None:
            continue
        pairs += [dataclasses.replace(record, context="", label=0),
                  dataclasses.replace(record, context="", response=other.response, label=1)]
    return pairs


async def relevancy(files: Sequence[Path], judge: EmbeddedJudge, seed: int) -> None:
    """Off-topic answers must fail relevancy: AUROC of (query, its answer) against (query, another's answer), and
    the share of off-topic answers that pass (aims: AUROC >= 0.90, at most 10 % passing)."""
    print("\nrelevancy: each good record's query with its own answer vs another record's good answer (off-topic)")
    pooled_scores: list[float | None] = []
    pooled_labels: list[int] = []
    for path in files:
        pairs = off_topic_pairs(read_records(path), seed)
        if len(pairs) < 20:
            continue
        scores = (await judge_scores(judge, pairs))[0]
        pooled_scores += scores
        pooled_labels += [p.label for p in pairs]
        print(_off_topic_row(path.name, scores, [p.label for p in pairs], judge.threshold))
    _, value, passing = _off_topic(pooled_scores, pooled_labels, judge.threshold)
    checks = [(f"AUROC {value:.3f} >= 0.90", value >= 0.90),
              (f"off-topic passing {passing:.1%} <= 10%", passing <= 0.1)]
    print(_off_topic_row("all files", pooled_scores, pooled_labels, judge.threshold) + "   aims: "
          + "; ".join(f"{text} {'met' if met else 'MISSED'}" for text, met in checks))


def _off_topic(scores: Sequence[float | None], labels: Sequence[int], threshold: float) -> tuple[int, float, float]:
    """(pairs judged, AUROC, the share of off-topic answers passing)."""
    kept = [(s, label) for s, label in zip(scores, labels, strict=True) if s is not None]
    off_topic = [s for s, label in kept if label == 1]
    return (len(kept), auroc([k[0] for k in kept], [k[1] for k in kept]),
            sum(s >= threshold for s in off_topic) / max(1, len(off_topic)))


def _off_topic_row(name: str, scores: Sequence[float | None], labels: Sequence[int], threshold: float) -> str:
    n, value, passing = _off_topic(scores, labels, threshold)
    return f"  {name:<34} n={n:>5}  AUROC {value:.3f}  off-topic passing {passing:.1%}"


def copied_answers(records: Sequence[LabelledRecord], seed: int, n: int = 400) -> list[LabelledRecord]:
    """Short grounded answers, seeded: for up to `n` records with a context, one or two consecutive sentences of
    that record's own context as its answer — supported by construction (label 0)."""
    rng = random.Random(seed + 3)
    out = []
    for r in [r for r in records if r.has_context][:n]:
        parts = [p for p in sentences(r.context) if len(p.split()) >= 3]
        if not parts:
            continue
        start = rng.randrange(len(parts))
        taken = parts[start:start + rng.choice((1, 2))]
        out.append(dataclasses.replace(r, id=f"{r.id}/copied", response=" ".join(taken), label=0))
    return out


async def copied(files: Sequence[Path], judge: EmbeddedJudge, seed: int) -> None:
    """How often short answers copied from the context pass faithfulness (aim: at least 80 % at the threshold), and
    the same answers reworded (`training.synthetic.paraphrase`, where a rewording applies): still supported."""
    print(f"\nshort grounded answers: one or two sentences of each record's own context, passing at {judge.threshold};"
          " then the same reworded (rule-based paraphrase)")
    totals = {"copied": [0, 0], "reworded": [0, 0]}
    for path in files:
        answers = copied_answers(read_records(path), seed)
        if not answers:
            continue
        rng = random.Random(seed + 4)
        reworded = [dataclasses.replace(a, response=text) for a in answers
                    if (text := paraphrase(a.response, rng)) is not None]
        line = f"  {path.name:<34}"
        for kind, batch in (("copied", answers), ("reworded", reworded)):
            scores = [s for s in (await judge_scores(judge, batch))[0] if s is not None]
            passed = sum(score >= judge.threshold for score in scores)
            totals[kind][0] += passed
            totals[kind][1] += len(scores)
            line += f"  {kind} n={len(scores):>4} passing {passed / max(1, len(scores)):>4.0%}"
        print(line)
    (copied_passing, copied_n), (reworded_passing, reworded_n) = totals["copied"], totals["reworded"]
    print(f"  {'all files':<34}  copied n={copied_n:>4} passing {copied_passing / max(1, copied_n):>4.0%}  reworded "
          f"n={reworded_n:>4} passing {reworded_passing / max(1, reworded_n):>4.0%}   aim (copied): >= 80%")


def context_mix(files: Sequence[Path], n: int, seed: int) -> list[LabelledRecord]:
    """`n` records drawn evenly from the context-bearing files, seeded."""
    per_file = [[r for r in read_records(path) if r.has_context] for path in files]
    per_file = [records for records in per_file if records]
    rng = random.Random(seed)
    mix = [r for records in per_file for r in rng.sample(records, min(len(records), n // len(per_file)))]
    rng.shuffle(mix)
    return mix


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set of this process, MB."""
    field = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(field["VmRSS"].split()[0]) / 1024, int(field["VmHWM"].split()[0]) / 1024


def reference_gflops(seconds: float = 1.0) -> float:
    """This machine's float32 matrix-product speed right now: 192x384 by 384x1536, a feed-forward layer's shape."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((192, 384), dtype=np.float32)
    b = rng.standard_normal((384, 1536), dtype=np.float32)
    products, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        a @ b
        products += 1
    return products * 2 * 192 * 384 * 1536 / elapsed / 1e9


def latency(records: Sequence[LabelledRecord], judge: EmbeddedJudge, model: Path) -> None:
    inputs = [JudgeInput("faithfulness", r.query, r.response, r.context) for r in records]
    judge.judge_now(inputs[:32])  # warm up
    before = reference_gflops()
    rates: list[tuple[str, float]] = []
    print(f"\nlatency on {len(inputs)} context-bearing records (all files mixed; ONNX Runtime on 2 threads)")
    for batch in (1, 32):
        times = []
        started = time.perf_counter()
        for start in range(0, len(inputs), batch):
            t = time.perf_counter()
            judge.judge_now(inputs[start:start + batch])
            times.append(time.perf_counter() - t)
        rate = len(inputs) / (time.perf_counter() - started)
        rates.append((f"batch {batch}", rate))
        aim = "   aim: >= 100 judgements/s at batch 1" if batch == 1 else ""
        print(f"  batch {batch:>2}: {rate:6.0f} judgements/s, per call p50 {percentile(times, 0.5) * 1000:6.1f} ms "
              f"p99 {percentile(times, 0.99) * 1000:6.1f} ms{aim}", flush=True)
    relevancy = [JudgeInput("relevancy", r.query or r.context[:200], r.response) for r in records]
    started = time.perf_counter()
    for start in range(0, len(relevancy), 32):
        judge.judge_now(relevancy[start:start + 32])
    rates.append(("relevancy, batch 32", len(relevancy) / (time.perf_counter() - started)))
    print(f"  relevancy, batch 32: {rates[-1][1]:6.0f} judgements/s")
    gflops = (before + reference_gflops()) / 2
    print(f"  same-run reference: float32 matrix products at {gflops:.1f} GFLOP/s (before {before:.1f}); per GFLOP/s: "
          + ", ".join(f"{name} {rate / gflops:.2f}" for name, rate in rates) + " judgements/s")
    now, peak = rss_mb()
    print(f"  RSS {now:.0f} MB (peak {peak:.0f} MB) with the model loaded and the dev files read")
    size = sum(f.stat().st_size for f in model.iterdir() if f.is_file() and f.suffix != ".md") / 1e6
    print(f"  the artefact: {size:.1f} MB   aim: <= 60 MB")


HEAVY_ACCURACY = 0.9


def simulated_heavy(labels: dict[str, int], seed: int) -> Callable[[dict[str, Any]], Completion]:
    """An OpenAI-compatible judge's answers that are right with probability HEAVY_ACCURACY, seeded per response."""
    def answer(request: dict[str, Any]) -> Completion:
        document = json.loads(request["messages"][-1]["content"])
        response = document["response"]
        bad = labels[response]
        right = random.Random(f"{seed}/{response}").random() < HEAVY_ACCURACY
        score = (0.1 if bad else 0.9) if right else (0.9 if bad else 0.1)
        label = "pass" if score >= 0.5 else "fail"
        return Completion(content=json.dumps({"score": score, "label": label, "explanation": "simulated"}))
    return answer


async def cascade_sweep(records: Sequence[LabelledRecord], judge: EmbeddedJudge, seed: int) -> None:
    labels = {r.response: r.label for r in records}
    items = [CascadeItem(JudgeInput("faithfulness", r.query, r.response, r.context)) for r in records]
    y = [labels[item.input.response] for item in items]
    print(f"\ncascade on {len(items)} context-bearing records: embedded judge, then a loopback heavy judge that is "
          f"right {HEAVY_ACCURACY:.0%} of the time, for items the embedded judge scores inside the band")
    async with OpenAiServer(simulated_heavy(labels, seed)) as server:
        heavy = OpenAiJudge(OpenAiJudgeConfig(base_url=server.base_url, model="simulated-heavy"), tier="heavy")
        try:
            for band in ((1.0, 0.0), (0.45, 0.55), (0.4, 0.6), (0.3, 0.7), (0.2, 0.8), (0.1, 0.9), (0.0, 1.0)):
                cascade = Cascade(judge, heavy, CascadeConfig(uncertainty_band=band))
                verdicts: list[Any] = []
                for start in range(0, len(items), 32):
                    verdicts += await cascade.judge(items[start:start + 32])
                scores = [v.verdict.score for v in verdicts]
                heavy_share = sum(v.verdict.tier == "heavy" for v in verdicts) / len(verdicts)
                at = at_threshold(scores, y, judge.threshold)
                name = "no band (embedded only)" if band[0] > band[1] else f"band [{band[0]:.2f}, {band[1]:.2f}]"
                print(f"  {name:<26} heavy calls {heavy_share:6.1%}   AUROC {auroc(scores, y):.3f}  "
                      f"bal.acc {at.balanced_accuracy:.3f}  F1 {at.f1:.3f}", flush=True)
        finally:
            await heavy.close()


async def run(directory: Path, seed: int, model: Path) -> None:
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        sys.exit(f"no judge-dev files in {directory}: set TRACEJUDGE_JUDGE_DATA to the directory holding judge-dev/")
    judge = EmbeddedJudge(model)
    try:
        await quality(files, judge, f"embedded judge ({judge.model})", seed)
        await copied(files, judge, seed)
        await relevancy(files, judge, seed)
        latency(context_mix(files, 640, seed), judge, model)
        await cascade_sweep(context_mix(files, 1000, seed + 1), judge, seed)
    finally:
        await judge.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "judge-dev")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, default=DEFAULT_DIR, help="embedded model directory (make train-judge)")
    args = parser.parse_args()
    asyncio.run(run(args.data, args.seed, args.model))


if __name__ == "__main__":
    main()
