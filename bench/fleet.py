"""A fleet against one instance, behind the OpenTelemetry Collector (build/otelcol-lb, the loadbalancing exporter by
trace id), state in PostgreSQL: the load client sends 512-span requests with 10% LLM spans to the Collector, which
routes them to 1 or 2 `tracejudge serve` instances (checks, sampler at 10%, judge queue on PostgreSQL, one judge
worker process each, heavy tier on a loopback OpenAI-compatible judge), all forwarding to one no-op downstream.

On this 2-core machine every process shares two cores (load client, Collector, instances, their workers,
PostgreSQL, the judge): a second instance cannot add cores, so the figure says what the design costs here, not
what it scales to. Run: `python -m bench.fleet` (part of `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from tests.support.postgres import PostgresServer

from .counters import SpanTally
from .forwarding import TRACEJUDGE, _free_port, noop_server
from .judge_server import judge_server
from .procs import Child
from .scenarios import Figures, Scenario, Target, measure

REPO = Path(__file__).resolve().parents[1]
OTELCOL_LB = REPO / "build" / "otelcol-lb"


def instance_config(port: int, downstream_port: int, judge_url: str, data: Path) -> str:
    return f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{port}"}}}}}}
processors:
  llm_extract:
  llm_checks:
  sampler: {{rate: 0.1, storage: postgresql}}
  judge_queue:
    storage: postgresql
    decision_wait: 0s
    max_decision_wait: 0s
    feedback: {{keep_unsampled: 0s}}
    stats: {{embeddings: false}}
    judges:
      local: {{judge: none}}
      heavy:
        judge: openai
        server: {{base_url: "{judge_url}", model: bench-judge, max_retries: 1}}
        limits: {{concurrency: 8}}
exporters:
  otlp: {{endpoint: "127.0.0.1:{downstream_port}", tls: {{insecure: true}}}}
extensions:
  file_storage: {{directory: "{data}"}}
  postgresql: {{dsn: "${{env:TRACEJUDGE_PG_DSN}}"}}
service:
  extensions: [file_storage, postgresql]
  decisions: {{storage: postgresql}}
  telemetry: {{metrics: {{address: ""}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [llm_extract, llm_checks, sampler, judge_queue], exporters: [otlp]}}
"""


def collector_config(port: int, instances: list[int]) -> str:
    hostnames = ", ".join(f"127.0.0.1:{p}" for p in instances)
    return f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{port}"}}}}}}
exporters:
  load_balancing:
    routing_key: traceID
    protocol: {{otlp: {{tls: {{insecure: true}}}}}}
    resolver: {{static: {{hostnames: [{hostnames}]}}}}
service:
  telemetry: {{metrics: {{level: none}}, logs: {{level: info}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [load_balancing]}}
"""


@asynccontextmanager
async def fleet(count: int, downstream_port: int, judge_url: str, dsn: str, tmp: Path
                ) -> AsyncIterator[tuple[list[Child], list[int]]]:
    """`count` instances on `dsn`: their processes and receiver ports."""
    ports = [_free_port() for _ in range(count)]
    children: list[Child] = []
    try:
        for index, port in enumerate(ports):
            config = tmp / f"instance{index}.yaml"
            config.write_text(instance_config(port, downstream_port, judge_url, tmp / f"data{index}"))
            child = await Child.start(f"tracejudge {index}", [str(TRACEJUDGE), "serve", "--config", str(config)],
                                      env={**os.environ, "TRACEJUDGE_PG_DSN": dsn})
            children.append(child)
            await child.wait_for(r"tracejudge is running", timeout_s=60)
        yield children, ports
    finally:
        for child in children:
            await child.stop()


async def behind_collector(count: int, scenario: Scenario, judge_url: str, server: PostgresServer,
                           downstream: Child, downstream_port: int, tally: SpanTally) -> tuple[Figures, float]:
    """The scenario through the Collector to `count` instances; the figures, and the instances' CPU in % of a core."""
    with tempfile.TemporaryDirectory(prefix="tracejudge-fleet-") as tmp:
        dsn = server.database(f"fleet_{count}_{scenario.concurrency}")
        async with fleet(count, downstream_port, judge_url, dsn, Path(tmp)) as (instances, ports):
            port = _free_port()
            config = Path(tmp, "collector.yaml")
            config.write_text(collector_config(port, ports))
            collector = await Child.start("otelcol-lb", [str(OTELCOL_LB), "--config", str(config)])
            try:
                await collector.wait_for("Everything is ready", timeout_s=30)
                before, started = sum(child.stats.cpu_s() for child in instances), time.perf_counter()
                figures = await measure(scenario, Target(f"{count} instance(s)", port, collector, tally,
                                                         downstream=downstream))
                after, wall_s = sum(child.stats.cpu_s() for child in instances), time.perf_counter() - started
            finally:
                await collector.stop()
    return figures, (after - before) / wall_s * 100  # the instances' own: their worker processes are apart


async def run(args: argparse.Namespace) -> None:
    if not OTELCOL_LB.exists():
        print(f"bench.fleet: no {OTELCOL_LB}: run `make otelcol-lb`")
        return
    print("a fleet behind the Collector (loadbalancing by trace id), state in PostgreSQL; 512-span requests, 10% "
          "LLM spans, sampler 10%, heavy judge on loopback:")
    print(f"  {'load':<22} {'instances':>9} {'sp/s':>9} {'x of 1':>7} {'instances CPU':>14} {'Collector CPU':>14}")
    async with AsyncExitStack() as stack:
        server = stack.enter_context(PostgresServer(durable=True))
        judge_url = await stack.enter_async_context(judge_server())
        downstream, downstream_port = await stack.enter_async_context(noop_server("no-op downstream"))
        tally = SpanTally(downstream_port)
        stack.push_async_callback(tally.close)
        for concurrency in (1, 4):
            scenario = Scenario(concurrency=concurrency, llm_fraction=0.1, duration_s=args.duration_s)
            single = 0.0
            for count in (1, 2):
                figures, cpu = await behind_collector(count, scenario, judge_url, server, downstream,
                                                      downstream_port, tally)
                single = single or figures.spans_per_s
                print(f"  {scenario.label:<22} {count:>9} {figures.spans_per_s:>9,.0f} "
                      f"{figures.spans_per_s / single:>7.2f} {cpu:>13.0f}% {figures.cpu_pct:>13.0f}%", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=5.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
