"""`make bench`: what each stage of the receive path costs, in CPU time of the thread that runs it.

bench.forwarding measures whole processes under load, which mixes gRPC, the exporter and the stages, and is noisy on
a small machine. This runs the service in-process from the same YAML as bench.forwarding (exporter to the no-op
downstream, sample to the loopback judge) and feeds its first stage decoded 512-span requests directly, for three
pipelines that each add stages: `llm_extract`; `+ llm_checks`; `+ sampler, judge_queue` (the receive path); `+ a
logs pipeline` (as shipped: llm_extract then joins LLM content from log records, which costs it bookkeeping per
LLM span even when no log record comes). The
figure is the event-loop thread's CPU time per request (time.thread_time: other threads and processes are not
counted; the exporter sends between rounds, so only its enqueueing is), the lowest of three rounds. The differences
between the pipelines are the stages' costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from tests.support.pipeline import running
from tracejudge.processor.pdata.otlp_codec import decode_protobuf

from .forwarding import noop_server, tracejudge_config
from .judge_server import judge_server
from .payloads import build_requests

RESULTS = Path(__file__).parent / "results" / "receive_path.json"
SPANS = 512
# name → (judge_url of tracejudge_config, a logs pipeline too); "judge": the loopback judge's URL (the receive path)
PIPELINES = {"llm_extract": ("", False), "+ llm_checks": ("checks", False), "+ sampler, judge_queue": ("judge", False),
             "+ a logs pipeline": ("judge", True)}


async def cost_ms(config: str, payloads: list[bytes], requests: int, rounds: int) -> float:
    """The lowest, over `rounds`, of the event loop's CPU milliseconds per request through the pipeline."""
    async with running(config) as service:
        head = service.processors["llm_extract"]

        async def one_round() -> float:
            started = time.thread_time()
            for i in range(requests):
                await head.consume(decode_protobuf(payloads[i % len(payloads)], "otlp").batch)
            return (time.thread_time() - started) / requests * 1000

        times = []
        for _ in range(rounds + 1):  # the first is a warm-up
            times.append(await one_round())
            await service.delivered(timeout_s=60)  # sent between rounds, not within: their CPU is not counted
        return min(times[1:])


async def run(requests: int, rounds: int) -> dict[str, dict[str, float]]:
    os.environ.setdefault("TRACEJUDGE_MEMORY_LIMIT_MIB", "65536")  # in-process: the memory limit is not measured here
    # a round holds the loop on purpose, which the monitor would report as stalls
    logging.getLogger("tracejudge.processor.service.loop_monitor").setLevel(logging.ERROR)
    figures: dict[str, dict[str, float]] = {}
    async with AsyncExitStack() as stack:
        _, downstream_port = await stack.enter_async_context(noop_server("no-op downstream"))
        judge_url = await stack.enter_async_context(judge_server())
        for fraction in (0.0, 0.1):
            payloads = build_requests(SPANS, fraction, 8)
            for name, (url, logs) in PIPELINES.items():
                with tempfile.TemporaryDirectory(prefix="tracejudge-receive-") as tmp:
                    config = tracejudge_config(downstream_port, "none", str(Path(tmp, "data")),
                                               judge_url if url == "judge" else url, "72h", "none", logs=logs)
                    ms = await cost_ms(config, payloads, requests, rounds)
                figures.setdefault(name, {})[f"{fraction:.0%}"] = ms
                print(f"  {name:<24} {fraction:>4.0%} LLM spans: {ms:6.2f} ms per request", flush=True)
    return figures


def table(figures: dict[str, dict[str, float]]) -> str:
    llm_spans = round(SPANS * 0.1)
    lines = [f"{'pipeline':<24}{'0% LLM ms':>11}{'10% LLM ms':>12}{'µs per LLM span':>17}{'stage adds':>12}",
             "-" * 76]
    previous = 0.0
    for name, row in figures.items():
        per_llm = (row["10%"] - row["0%"]) / llm_spans * 1000
        lines.append(f"{name:<24}{row['0%']:>11.2f}{row['10%']:>12.2f}{per_llm:>17.0f}{per_llm - previous:>12.0f}")
        previous = per_llm
    lines.append(f"\nms = the event loop's CPU per {SPANS}-span request ({llm_spans} LLM spans at 10%); µs per LLM "
                 "span = (10% − 0%) ÷ LLM spans; stage adds = over the pipeline above")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(f"receive path, stage by stage, in-process ({os.cpu_count()} CPU(s))", flush=True)
    figures = asyncio.run(run(args.requests, args.rounds))
    print()
    print(table(figures))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"spans_per_request": SPANS, "ms_per_request": figures}, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
