"""`make bench`: the no-op gRPC reference and tracejudge forwarding to a no-op downstream, under the same load.

Every party is its own process: the no-op reference, the no-op downstream, tracejudge (`tracejudge serve`) and, per
scenario, the load client. See bench/README.md for what is measured and how to read the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from .counters import SpanTally
from .judge_server import judge_server
from .procs import Child, python_module
from .report import Pair, Testbed, collector_table, document, forwarding_table, testbed_table
from .scenarios import Scenario, Target, measure

RESULTS = Path(__file__).parent / "results" / "forwarding.json"
TRACEJUDGE = Path(sys.executable).parent / "tracejudge"
OTELCOL = Path(__file__).resolve().parent.parent / "build" / "otelcol"  # `make otelcol`


def collector_config(port: int, downstream_port: int, compression: str) -> str:
    """The Collector a user would put here instead: otlp receiver → batch (its defaults) → otlp exporter (its
    default sending queue), to the same no-op downstream."""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{port}"}}
processors:
  batch:
exporters:
  otlp:
    endpoint: 127.0.0.1:{downstream_port}
    tls: {{insecure: true}}
    compression: {compression}
service:
  telemetry: {{metrics: {{level: none}}, logs: {{level: info}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp]}}
"""


def tracejudge_config(downstream_port: int, compression: str, data_dir: str, judge_url: str = "",
                      keep_unsampled: str = "72h", local: str = "embedded", embeddings: bool = True,
                      logs: bool = False, processes: int = 1) -> str:
    """The Collector-shaped config under test: otlp receiver → llm_extract → otlp exporter (default queue); with
    `judge_url` (an OpenAI-compatible server), also checks, sampling at 10% and the judge cascade (unsampled LLM
    spans kept for feedback for `keep_unsampled`; `local: none` leaves the embedded judge out, so the process does
    the receive path and hands the sample to the loopback judge; `embeddings` False turns off the statistics'
    drift projection, which loads the embedding model); with "checks", checks only. With `logs`, a logs pipeline
    shares the receiver, as in the shipped config: llm_extract then joins content from log records. `processes`:
    judge worker processes (0: judging in the receiving process)."""
    processors, judging = "[llm_extract]", ""
    if judge_url == "checks":
        processors, judging = "[llm_extract, llm_checks]", "\n  llm_checks:"
    elif judge_url:
        processors = "[llm_extract, llm_checks, sampler, judge_queue]"
        judging = f"""
  llm_checks:
  sampler: {{rate: 0.1}}
  judge_queue:
    storage: file_storage
    decision_wait: 0s
    max_decision_wait: 0s
    feedback: {{keep_unsampled: {keep_unsampled}}}
    workers: {{processes: {processes}}}
    stats: {{embeddings: {str(embeddings).lower()}}}
    judges:
      local: {{judge: {local}}}
      heavy:
        judge: openai
        server: {{base_url: "{judge_url}", model: bench-judge, max_retries: 1}}
        limits: {{concurrency: 8}}
      cascade: {{uncertainty_band: [0.3, 0.7]}}"""
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  llm_extract:{judging}
exporters:
  otlp:
    endpoint: 127.0.0.1:{downstream_port}
    tls: {{insecure: true}}
    compression: {compression}
extensions:
  file_storage:
    directory: {data_dir}
service:
  extensions: [file_storage]
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}, logs: {{level: info}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: {processors}
      exporters: [otlp]
""" + ("    logs: {receivers: [otlp], exporters: [otlp]}\n" if logs else "")


@asynccontextmanager
async def noop_server(name: str) -> AsyncIterator[tuple[Child, int]]:
    child = await Child.start(name, python_module("bench.noop_server", "--port", "0"))
    try:
        match, _ = await child.wait_for(r"^port (\d+)$", timeout_s=30)
        yield child, int(match.group(1))
    finally:
        await child.stop()


@asynccontextmanager
async def tracejudge(downstream: Child, downstream_port: int, tally: SpanTally, compression: str,
                     log_lines: list[str], judge_url: str = "", keep_unsampled: str = "72h",
                     local: str = "embedded", embeddings: bool = True, processes: int = 1
                     ) -> AsyncIterator[Target]:
    """A fresh `tracejudge serve`; its warnings and errors are appended to `log_lines` when it stops."""
    with tempfile.TemporaryDirectory(prefix="tracejudge-bench-") as tmp:
        config = Path(tmp, "otel-config.yaml")
        config.write_text(tracejudge_config(downstream_port, compression, str(Path(tmp, "data")), judge_url,
                                            keep_unsampled, local, embeddings, processes=processes))
        child = await Child.start("tracejudge", [str(TRACEJUDGE), "serve", "--config", str(config)])
        try:
            grpc_port, _ = await child.wait_for(r"receiver otlp: OTLP/gRPC on port (\d+)", timeout_s=30)
            metrics_port, _ = await child.wait_for(r"metrics: http://localhost:(\d+)/metrics", timeout_s=30)
            name = f"tracejudge (egress {compression}{', ' + judge_url if judge_url else ''})"
            yield Target(name, int(grpc_port.group(1)), child, tally,
                         downstream=downstream, metrics_port=int(metrics_port.group(1)))
        finally:
            status = await child.stop()
            log_lines += [f"[egress {compression}] {line}" for line in child.lines if " WARNING " in line
                          or " ERROR " in line or "Traceback" in line]
            if status != 0:
                log_lines.append(f"[egress {compression}] tracejudge exited with status {status}")


@asynccontextmanager
async def collector(downstream: Child, downstream_port: int, tally: SpanTally, compression: str
                    ) -> AsyncIterator[Target | None]:
    """A fresh OpenTelemetry Collector (build/otelcol), or None when it is not built."""
    if not OTELCOL.exists():
        print(f"  (no {OTELCOL}: run `make otelcol` for the Collector's figures)", flush=True)
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="otelcol-bench-") as tmp:
        port = _free_port()
        config = Path(tmp, "config.yaml")
        config.write_text(collector_config(port, downstream_port, compression))
        child = await Child.start("otelcol", [str(OTELCOL), "--config", str(config)])
        try:
            await child.wait_for("Everything is ready", timeout_s=30)
            yield Target(f"otelcol (egress {compression})", port, child, tally, downstream=downstream)
        finally:
            await child.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def matrix(args: argparse.Namespace) -> list[Scenario]:
    return [Scenario(concurrency=c, gzip=g, llm_fraction=f, warmup_s=args.warmup_s, duration_s=args.duration_s)
            for g in (False, True) for c in (1, 4) for f in (0.0, 0.1)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pairs: list[Pair] = []
    testbeds: list[Testbed] = []
    log_lines: list[str] = []
    started, code = time.monotonic(), _code_version()  # before: others may commit while this runs
    async with AsyncExitStack() as stack:
        downstream, downstream_port = await stack.enter_async_context(noop_server("no-op downstream"))
        reference, reference_port = await stack.enter_async_context(noop_server("no-op reference"))
        downstream_tally, reference_tally = SpanTally(downstream_port), SpanTally(reference_port)
        stack.push_async_callback(downstream_tally.close)
        stack.push_async_callback(reference_tally.close)
        noop = Target("no-op", reference_port, reference, reference_tally)
        # tracejudge's judge_url, keep_unsampled and local tier: the receive path hands its sample to a loopback
        # judge in a process of its own, so the judging's CPU is not tracejudge's
        path: tuple[str, str, str] = ("", "72h", "embedded")  # tracejudge's defaults: llm_extract only
        if args.pipeline == "receive":
            path = (await stack.enter_async_context(judge_server()), "72h", "none")
        scenarios = matrix(args) if args.part in ("all", "forwarding") else []
        for gzip in (False, True):
            group = [s for s in scenarios if s.gzip == gzip]
            if not group:
                continue
            # Egress compression follows the scenario's, so "gzip" means gzip on both of tracejudge's hops.
            compression = "gzip" if gzip else "none"
            async with tracejudge(downstream, downstream_port, downstream_tally, compression, log_lines,
                                  *path) as tj, \
                    collector(downstream, downstream_port, downstream_tally, compression) as oc:
                for scenario in group:
                    pair = Pair(scenario, await measure(scenario, noop), await measure(scenario, tj),
                                await measure(scenario, oc) if oc is not None else None)
                    pairs.append(pair)
                    versus = f"   otelcol {pair.collector.spans_per_s:>9,.0f} sp/s   tj/otelcol " \
                             f"{pair.versus_collector:.2f}" if pair.collector else ""
                    print(f"  {scenario.label:<22} no-op {pair.noop.spans_per_s:>9,.0f} sp/s   tracejudge "
                          f"{pair.tracejudge.spans_per_s:>9,.0f} sp/s   ratio {pair.ratio:.2f}{versus}", flush=True)
        if args.part in ("all", "testbed"):
            # The Collector's testbed uses its exporters' defaults (gzip on both hops). Run without LLM spans, then
            # with tracejudge's own workload; a fresh process each, so their RSS figures are comparable.
            for llm_fraction in (0.0, 0.1):
                scenario = Scenario(rate=100, spans=100, gzip=True, llm_fraction=llm_fraction,
                                    warmup_s=args.warmup_s, duration_s=args.testbed_s)
                async with tracejudge(downstream, downstream_port, downstream_tally, "gzip", log_lines, *path) as tj:
                    measured = await measure(scenario, tj)
                # the drift projection's embedding model is most of tracejudge's memory: also measured without it
                lean = None
                if path[0] and llm_fraction:
                    async with tracejudge(downstream, downstream_port, downstream_tally, "gzip", log_lines, *path,
                                          embeddings=False) as tj:
                        lean = await measure(scenario, tj)
                async with collector(downstream, downstream_port, downstream_tally, "gzip") as oc:
                    testbeds.append(Testbed(scenario, measured, await measure(scenario, oc) if oc else None, lean))
                print(f"  testbed {scenario.label:<22} tracejudge CPU {measured.cpu_pct:.1f} %", flush=True)
    context = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "grpcio": grpc.__version__,
                           "platform": platform.platform()}, "code": code,
               "runtime_s": time.monotonic() - started, "tracejudge_log_warnings": log_lines}
    return {"pairs": pairs, "testbeds": testbeds, "document": document(pairs, testbeds, context)}


def _code_version() -> dict[str, str]:
    """The commit measured, and which files differed from it (the figures describe the work tree, not the commit)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "uncommitted": git("status", "--porcelain", "--", "processor")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=("all", "forwarding", "testbed"), default="all")
    parser.add_argument("--duration-s", type=float, default=5.0, help="measured window per forwarding scenario")
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--testbed-s", type=float, default=15.0, help="measured window of the testbed scenario")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--pipeline", choices=("receive", "extract"), default="receive",
                        help="receive: the shipped receive path (llm_extract, llm_checks, sampler at 10%%, judge_queue "
                             "handing the sample to a loopback judge; no embedded judge in the process); extract: "
                             "llm_extract only")
    args = parser.parse_args()
    print(f"tracejudge forwarding benchmark on {os.cpu_count()} CPU(s); every party is its own process", flush=True)
    try:
        outcome = asyncio.run(run(args))
    except RuntimeError as e:  # a party failed to start or stopped answering; its output is in the message
        print(f"\nbench aborted: {e}", file=sys.stderr)
        sys.exit(1)
    if outcome["pairs"]:
        print("\nforwarding: 512-span requests, closed loop; sp/s = spans/s; latency per Export call\n")
        print(forwarding_table(outcome["pairs"]))
        print("\nbeside the OpenTelemetry Collector (build/otelcol: otlp → batch → otlp, its defaults), same load and "
              "sink; added latency is over the no-op server's\n")
        print(collector_table(outcome["pairs"]))
    for testbed in outcome["testbeds"]:
        print()
        print(testbed_table(testbed))
    warnings = outcome["document"]["tracejudge_log_warnings"]
    if warnings:
        print(f"\ntracejudge logged {len(warnings)} warning/error line(s); first ones:")
        print("\n".join(f"  {line}" for line in warnings[:10]))
    code = outcome["document"]["code"]
    dirty = "with uncommitted changes in processor/" if code["uncommitted"] else "clean processor/"
    print(f"\nmeasured commit {code['commit'][:12]} ({dirty})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(outcome["document"], indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
