"""What the statistics cost: per evaluation, the monitor's update (every detector of its series) and the stored path
(update plus the SQLite transaction per judged batch); and the time to replay 1,000,000 stored evaluations.

Each figure sits next to a reference measured in the same run: a bare Welford update (`Moments.update`) for the
per-evaluation cost, and a bare scan of the same SQLite rows into `Evaluation` values for replay, so the ratios
compare across machines and loads. Traffic: 12 series (2 services, 5 models, a second prompt version for one),
a fingerprint change and a prompt change on the way, 10% of items outside the uniform stratum, 2-dimensional query
projections. Run: `python -m bench.stats [--replay-n 1000000]`.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from tracejudge.stats.config import StatsConfig
from tracejudge.stats.monitor import QualityMonitor
from tracejudge.stats.records import Evaluation
from tracejudge.stats.replay import replay
from tracejudge.stats.store import StatsStore
from tracejudge.stats.streaming import Moments
from tracejudge.stats.tracker import QualityTracker

from .judge_quality import rss_mb


def traffic(n: int, seed: int, first: int = 0) -> list[Evaluation]:
    """Evaluations `first` .. `first + n - 1` of a stream (ids and times follow the index)."""
    rng = random.Random(seed)
    out = []
    for i in range(first, first + n):
        service, model = f"svc{i % 2}", f"model{(i // 2) % 5}"
        late = i > n // 2
        prompt = "v2" if late and model == "model0" else "v1"
        fingerprint = "fp_b" if late and model == "model1" else "fp_a"
        score = 0.9 if rng.random() < (0.7 if fingerprint == "fp_b" else 0.85) else 0.2
        uniform = rng.random() < 0.9
        out.append(Evaluation(f"{i:032x}", f"{i:016x}", 1_700_000_000_000_000_000 + i * 10_000_000, service, prompt,
                              model, f"{model}-2025", fingerprint, "faithfulness", score, score >= 0.5,
                              1.0 if not uniform else 0.1, "uniform" if uniform else "errors", uniform, "local",
                              "minilm", "1", rng.uniform(0.2, 3.0), rng.randint(100, 900), rng.random() < 0.02,
                              rng.randint(3, 40), (rng.gauss(0, 0.05), rng.gauss(0, 0.05))))
    return out


def per_evaluation(n: int) -> None:
    evaluations = traffic(n, seed=1)
    moments = Moments()
    started = time.perf_counter()
    for e in evaluations:
        moments.update(e.score)
    reference_us = (time.perf_counter() - started) / n * 1e6
    monitor = QualityMonitor(StatsConfig())
    started = time.perf_counter()
    alerts = monitor.observe(evaluations)
    update_us = (time.perf_counter() - started) / n * 1e6
    with tempfile.TemporaryDirectory() as directory:
        tracker = QualityTracker(StatsStore(Path(directory) / "stats.db"), StatsConfig())
        started = time.perf_counter()
        for start in range(0, n, 16):  # a judge worker's batch
            tracker.record(evaluations[start:start + 16])
        tracker.close()
        stored_us = (time.perf_counter() - started) / n * 1e6
    print(f"per evaluation ({n:,} evaluations, {len(monitor.series)} series, {len(alerts)} alerts raised)")
    print(f"  reference: bare Welford update           {reference_us:8.2f} µs")
    print(f"  monitor update (every detector)           {update_us:8.2f} µs   ratio {update_us / reference_us:6.1f}")
    print(f"  + store (batches of 16, checkpoints)      {stored_us:8.2f} µs   ratio {stored_us / reference_us:6.1f}",
          flush=True)


def replay_time(n: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = StatsStore(Path(directory) / "stats.db")
        started = time.perf_counter()
        for start in range(0, n, 50_000):
            store.add(traffic(min(50_000, n - start), seed=start, first=start))
        filled = time.perf_counter() - started
        started = time.perf_counter()
        scanned = sum(len(batch) for batch in store.evaluations())
        scan_s = time.perf_counter() - started
        started = time.perf_counter()
        alerts = sum(1 for _ in replay(store, StatsConfig()))
        replay_s = time.perf_counter() - started
        size_mb = (Path(directory) / "stats.db").stat().st_size / 1e6
        store.close()
    now, peak = rss_mb()
    print(f"\nreplay of {n:,} stored evaluations ({size_mb:,.0f} MB database, filled in {filled:.0f} s)")
    print(f"  reference: scan rows into evaluations     {scan_s:8.1f} s   ({scanned / scan_s:,.0f}/s)")
    print(f"  replay (monitor from empty state)         {replay_s:8.1f} s   ({n / replay_s:,.0f}/s)   "
          f"ratio {replay_s / scan_s:5.1f}   {alerts} alerts")
    print(f"  RSS {now:.0f} MB (peak {peak:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="evaluations for the per-evaluation cost")
    parser.add_argument("--replay-n", type=int, default=1_000_000)
    args = parser.parse_args()
    per_evaluation(args.n)
    replay_time(args.replay_n)


if __name__ == "__main__":
    main()
