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
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.judge_queue.config import WorkerConfig
from tracejudge.processor.processors.judge_queue.metrics import JudgeQueueMetrics
from tracejudge.processor.processors.judge_queue.worker import JudgeWorker

from .counters import SpanTally
from .forwarding import TRACEJUDGE, noop_server, tracejudge
from .judge_server import judge_server
from .procs import Child
from .scenarios import Figures, Scenario, Target, measure

CONCURRENCY = 8
_BODY = {"query": "What is the capital of France?", "response": "Paris is the capital of France.",
         "documents": ["Paris is the capital and largest city of France."], "probability": 0.1}


async def export_with_and_without_judging(judge_url: str, duration_s: float) -> None:
    print("export path, 512-span requests with 10% LLM spans (sampler 10%, heavy tier on a loopback OpenAI server):")
    print("  off = extraction only; checks = + deterministic checks; in-proc = + sampler, judge queue and judging in")
    print("  the receiving process (workers.processes: 0); workers = judging in a worker process of its own (the")
    print("  default, processes: 1); embedded = workers with the embedded local tier first (it takes a core itself)")
    print(f"  {'scenario':<22} {'no-op sp/s':>11} {'off sp/s':>10} {'checks':>8} {'in-proc':>8} {'/off':>5} "
          f"{'workers':>8} {'/off':>5} {'embedded':>9} {'/off':>5} {'off p50/p99':>12} {'workers p50/p99':>16}")
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
            for url, local, processes in (("", "none", 0), ("checks", "none", 0), (judge_url, "none", 0),
                                          (judge_url, "none", 1), (judge_url, "embedded", 1)):
                async with tracejudge(downstream, downstream_port, tally, compression, log_lines, url,
                                      local=local, processes=processes) as target:
                    figures.append(await measure(scenario, target))
            base, off, checks, in_process, workers, embedded = figures
            ratios = [f.spans_per_s / off.spans_per_s for f in (in_process, workers, embedded)]
            print(f"  {scenario.label:<22} {base.spans_per_s:>11,.0f} {off.spans_per_s:>10,.0f} "
                  f"{checks.spans_per_s:>8,.0f} {in_process.spans_per_s:>8,.0f} {ratios[0]:>5.2f} "
                  f"{workers.spans_per_s:>8,.0f} {ratios[1]:>5.2f} {embedded.spans_per_s:>9,.0f} {ratios[2]:>5.2f} "
                  f"{_latency(off):>12} {_latency(workers):>16}", flush=True)
            print(f"  {'':<22} receiving process RSS: off {off.peak_rss_mib:.0f} MiB, in-proc "
                  f"{in_process.peak_rss_mib:.0f} MiB, workers {workers.peak_rss_mib:.0f} MiB (the worker's own "
                  "not counted)")
    for line in log_lines[:5]:
        print(f"  tracejudge log: {line}")


async def _drain(directory: Path, items: int, local: str, heavy_url: str | None) -> float:
    queue = JudgeQueue(str(directory / "judge_queue.db"), JudgeQueueConfig(max_items=items), "1")
    heavy = TierConfig(judge="none")
    if heavy_url:
        heavy = TierConfig(judge="openai", server=OpenAiJudgeConfig(base_url=heavy_url, model="bench-judge"),
                           limits=TierLimits(concurrency=CONCURRENCY))
    judges = build_judges(JudgesConfig(local=TierConfig(judge=local), heavy=heavy, cache_ttl=0), queue)  # type: ignore[arg-type]
    queue.enqueue([NewItem(f"{i:016x}", f"{i:032x}", ("faithfulness", "relevancy")[i % 2], _BODY)
                   for i in range(items)])
    telemetry = Telemetry()
    worker = JudgeWorker(queue, judges, WorkerConfig(poll_interval=0.01), _Sink(),
                         telemetry.metrics(JudgeQueueMetrics), None, "1")
    started = time.perf_counter()
    await worker.start()
    while queue.waiting():
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    await worker.shutdown()
    queue.close()
    return items / elapsed


def _worker_config(data: Path, base_url: str, downstream_port: int) -> str:
    return f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}
processors:
  llm_extract:
  sampler:
  judge_queue:
    storage: file_storage
    stats: {{enabled: false}}
    workers: {{poll_interval: 10ms}}
    judges:
      local: {{judge: none}}
      heavy:
        judge: openai
        server: {{base_url: "{base_url}", model: bench-judge, max_retries: 1}}
        limits: {{concurrency: {CONCURRENCY}}}
      cache_ttl: 0s
exporters:
  otlp: {{endpoint: "127.0.0.1:{downstream_port}", tls: {{insecure: true}}}}
extensions:
  file_storage: {{directory: "{data}"}}
service:
  extensions: [file_storage]
  telemetry: {{metrics: {{address: ""}}, logs: {{level: warn}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [llm_extract, sampler, judge_queue], exporters: [otlp]}}
"""


async def _drain_with_workers(directory: Path, items: int, base_url: str, processes: int,
                              downstream_port: int) -> float:
    """Items per second `processes` running `tracejudge worker`s judge, from the moment the items are committed."""
    config = directory / "otel-config.yaml"
    config.write_text(_worker_config(directory / "data", base_url, downstream_port))
    (directory / "data").mkdir()
    queue = JudgeQueue(str(directory / "data" / "judge_queue.db"), JudgeQueueConfig(max_items=items), "1")
    workers = [await Child.start(f"worker{i + 1}", [str(TRACEJUDGE), "worker", "--config", str(config), "--name",
                                                   f"worker{i + 1}"]) for i in range(processes)]
    try:
        for worker in workers:
            await worker.wait_for(r"tracejudge-worker-ready", timeout_s=60)
        started = time.perf_counter()
        queue.enqueue([NewItem(f"{i:016x}", f"{i:032x}", ("faithfulness", "relevancy")[i % 2], _BODY)
                       for i in range(items)])
        while queue.waiting():
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            await worker.stop()
        queue.close()
    return items / elapsed


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
    print(f"\njudge queue: {items} items (span x metric) committed, then drained by the judge workers "
          f"(batches of 16, heavy tier concurrency {CONCURRENCY} per process):")
    raw = await raw_calls(base_url, items)
    for label, local, heavy in (("embedded local tier only", "embedded", None),
                                ("heavy tier only (loopback OpenAI API)", "none", base_url)):
        with tempfile.TemporaryDirectory(prefix="tracejudge-bench-") as tmp:
            rate = await _drain(Path(tmp), items, local, heavy)
        versus = f"   {rate / raw:.2f} of raw client calls ({raw:,.0f}/s)" if heavy else ""
        print(f"  in this process, {label:<38} {rate:>8,.0f} items/s{versus}", flush=True)
    single = 0.0
    async with noop_server("no-op downstream") as (_, downstream_port):
        for processes in (1, 2, 4):
            with tempfile.TemporaryDirectory(prefix="tracejudge-bench-") as tmp:
                rate = await _drain_with_workers(Path(tmp), items, base_url, processes, downstream_port)
            single = single or rate
            print(f"  {processes} `tracejudge worker` process(es), heavy tier only {rate:>12,.0f} items/s   "
                  f"x{rate / single:.2f} of one, {rate / raw:.2f} of raw client calls", flush=True)


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
