"""Judging, measured: export throughput and latency with judging on vs off (judging must not move them), and how
many items per second the judge workers get through with a loopback OpenAI-compatible judge, against raw client
calls to the same server in the same run. Run: `python -m bench.judging` (part of `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import openai

from tracejudge.judge.limits import TierLimits
from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig, NewItem
from tracejudge.judge.server_config import OpenAiJudgeConfig
from tracejudge.judge.tiers import JudgesConfig, TierConfig, build_judges
from tracejudge.processor.component.host import RateScale
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.judge_queue.config import WorkerConfig
from tracejudge.processor.processors.judge_queue.metrics import JudgeQueueMetrics
from tracejudge.processor.processors.judge_queue.worker import JudgeWorker

from .counters import SpanTally
from .forwarding import noop_server, tracejudge
from .judge_server import judge_server
from .scenarios import Figures, Scenario, Target, measure

CONCURRENCY = 8


async def export_with_and_without_judging(judge_url: str, duration_s: float) -> None:
    print("export path, 512-span requests with 10% LLM spans (sampler 10%, cascade local -> heavy):")
    print("  off = extraction only; checks = + deterministic checks (events written into LLM spans); on = + sampler,")
    print("  judge queue and judge workers in the same process (local embedded judge, heavy via a loopback server),")
    print("  unsampled LLM spans kept on disk for feedback; on, no keep = the same with feedback.keep_unsampled: 0s")
    print(f"  {'scenario':<22} {'no-op sp/s':>11} {'off sp/s':>10} {'checks':>10} {'on sp/s':>10} {'on/off':>7} "
          f"{'no keep':>10} {'off p50/p99 ms':>15} {'on p50/p99 ms':>15}")
    log_lines: list[str] = []
    async with AsyncExitStack() as stack:
        downstream, downstream_port = await stack.enter_async_context(noop_server("no-op downstream"))
        reference, reference_port = await stack.enter_async_context(noop_server("no-op reference"))
        tally, reference_tally = SpanTally(downstream_port), SpanTally(reference_port)
        stack.push_async_callback(tally.close)
        stack.push_async_callback(reference_tally.close)
        noop = Target("no-op", reference_port, reference, reference_tally)
        for scenario in (Scenario(concurrency=1, llm_fraction=0.1, duration_s=duration_s),
                         Scenario(concurrency=4, gzip=True, llm_fraction=0.1, duration_s=duration_s)):
            compression = "gzip" if scenario.gzip else "none"
            figures: list[Figures] = [await measure(scenario, noop)]
            for url, keep in (("", "72h"), ("checks", "72h"), (judge_url, "72h"), (judge_url, "0s")):
                async with tracejudge(downstream, downstream_port, tally, compression, log_lines, url,
                                      keep) as target:
                    figures.append(await measure(scenario, target))
            base, off, checks, on, no_keep = figures
            print(f"  {scenario.label:<22} {base.spans_per_s:>11,.0f} {off.spans_per_s:>10,.0f} "
                  f"{checks.spans_per_s:>10,.0f} {on.spans_per_s:>10,.0f} {on.spans_per_s / off.spans_per_s:>7.2f} "
                  f"{no_keep.spans_per_s:>10,.0f} {_latency(off):>15} {_latency(on):>15}   "
                  f"(RSS on: {on.peak_rss_mib:.0f} MiB)", flush=True)
    for line in log_lines[:5]:
        print(f"  tracejudge log: {line}")


def _latency(figures: Figures) -> str:
    return f"{figures.load.p50_ms:.1f}/{figures.load.p99_ms:.1f}"


async def raw_calls(base_url: str, calls: int) -> float:
    """Chat completions per second straight from the openai client at the workers' concurrency: the ceiling."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with limit:
            await client.chat.completions.create(model="bench-judge", temperature=0,
                                                 messages=[{"role": "user", "content": "judge this"}])

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    elapsed = time.perf_counter() - started
    await client.close()
    return calls / elapsed


class _Sink:
    def __init__(self) -> None:
        self.spans = 0

    async def consume(self, batch: TraceBatch) -> None:
        self.spans += batch.span_count


async def queue_throughput(base_url: str, items: int) -> None:
    print(f"\njudge queue: {items} items (span x metric) committed, then drained by the workers "
          f"(2 workers, batches of 16, heavy tier concurrency {CONCURRENCY}):")
    raw = await raw_calls(base_url, items)
    for label, local, heavy in (("embedded local tier only", "embedded", None),
                                ("heavy tier only (loopback OpenAI API)", "none", base_url)):
        with tempfile.TemporaryDirectory(prefix="tracejudge-bench-") as tmp:
            rate = await _drain(Path(tmp), items, local, heavy)
        versus = f"   {rate / raw:.2f} of raw client calls ({raw:,.0f}/s)" if heavy else ""
        print(f"  {label:<40} {rate:>8,.0f} items/s{versus}", flush=True)


async def _drain(directory: Path, items: int, local: str, heavy_url: str | None) -> float:
    queue = JudgeQueue(str(directory / "judge_queue.db"), JudgeQueueConfig(max_items=items), "1")
    heavy = TierConfig(judge="none")
    if heavy_url:
        heavy = TierConfig(judge="openai", server=OpenAiJudgeConfig(base_url=heavy_url, model="bench-judge"),
                           limits=TierLimits(concurrency=CONCURRENCY))
    judges = build_judges(JudgesConfig(local=TierConfig(judge=local), heavy=heavy, cache_ttl=0), queue)  # type: ignore[arg-type]
    body = {"query": "What is the capital of France?", "response": "Paris is the capital of France.",
            "documents": ["Paris is the capital and largest city of France."], "probability": 0.1}
    queue.enqueue([NewItem(f"{i:016x}", f"{i:032x}", ("faithfulness", "relevancy")[i % 2], body)
                   for i in range(items)])
    telemetry = Telemetry()
    worker = JudgeWorker(queue, judges, WorkerConfig(poll_interval=0.01), _Sink(),
                         telemetry.metrics(JudgeQueueMetrics), RateScale(), "1")
    started = time.perf_counter()
    await worker.start()
    while queue.waiting():
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    await worker.shutdown()
    queue.close()
    return items / elapsed


async def run(args: argparse.Namespace) -> None:
    async with judge_server() as base_url:
        await export_with_and_without_judging(base_url, args.duration_s)
        await queue_throughput(base_url, args.items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--items", type=int, default=2000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
