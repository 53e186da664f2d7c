"""One load scenario against one target: run the client process, sample the servers over its measured window,
wait for the forwarded spans to drain, and reduce it all to figures."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from .counters import METRICS, SpanTally, scrape_metrics
from .load import LoadResult
from .procs import Child, python_module

__all__ = ["Figures", "Scenario", "Target", "measure"]

_DRAIN_TIMEOUT_S = 15.0
_QUEUE = "tracejudge_exporter_queue_size"  # a gauge: its maximum over the scenario is reported, not a delta


@dataclass(frozen=True)
class Scenario:
    concurrency: int = 1
    gzip: bool = False
    llm_fraction: float = 0.0
    spans: int = 512
    rate: float = 0.0  # requests/s, open loop; 0 means closed loop at `concurrency`
    warmup_s: float = 1.0
    duration_s: float = 5.0

    @property
    def label(self) -> str:
        load = f"{self.rate:g} req/s" if self.rate else f"c={self.concurrency}"
        return f"{load} {'gzip' if self.gzip else 'none'} llm={self.llm_fraction:.0%}"

    def client_argv(self, port: int) -> list[str]:
        argv = python_module("bench.load", "--target", f"127.0.0.1:{port}", "--spans", str(self.spans),
                             "--llm-fraction", str(self.llm_fraction), "--concurrency", str(self.concurrency),
                             "--rate", str(self.rate), "--warmup-s", str(self.warmup_s),
                             "--duration-s", str(self.duration_s))
        return [*argv, "--gzip"] if self.gzip else argv


@dataclass
class Target:
    """What the client sends to. `tally` counts spans where the path ends: the target itself for the no-op
    reference, the no-op downstream for tracejudge (whose CPU is then counted as `downstream`)."""

    name: str
    port: int
    process: Child
    tally: SpanTally
    downstream: Child | None = None
    metrics_port: int | None = None


@dataclass
class Figures:
    target: str
    load: LoadResult
    accepted_per_s: float  # spans of OK'd calls completed inside the window
    delivered_per_s: float  # spans arriving at the end of the path inside the window
    cpu_pct: float  # of one core, target process, over the window
    downstream_cpu_pct: float
    rss_mib: float
    peak_rss_mib: float  # since the scenario started if `peak_is_per_scenario`, else since the process started
    peak_is_per_scenario: bool
    dropped: int  # accepted by the target but not at the end of the path after the drain wait
    # tracejudge's own counts: deltas over the scenario, and the longest sending queue (requests) seen in it
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def spans_per_s(self) -> float:
        """Sustained throughput: a target is only as fast as the slower of taking spans in and passing them on."""
        return min(self.accepted_per_s, self.delivered_per_s)

    @property
    def refused_requests(self) -> int:
        return sum(self.load.refused.values())


async def measure(scenario: Scenario, target: Target) -> Figures:
    before_metrics = await _metrics(target)
    tally_before = await target.tally.get()
    per_scenario_peak = target.process.stats.reset_peak()
    client = await Child.start("load client", scenario.client_argv(target.port))
    queue_peak = [0.0]
    watcher = asyncio.create_task(_watch_queue(target, queue_peak))
    try:
        _, cursor = await client.wait_for(r"^measure$", timeout_s=60)
        start = await _snapshot(target)
        _, cursor = await client.wait_for(r"^done$", timeout_s=scenario.duration_s + 30, after=cursor)
        end = await _snapshot(target)
        watcher.cancel()
        match, _ = await client.wait_for(r"^result (.*)$", timeout_s=60, after=cursor)
    finally:
        watcher.cancel()
        await client.stop()
    load = LoadResult(**json.loads(match.group(1)))
    expected = tally_before + load.ok_spans_total
    received = await _drained(target.tally, expected)
    after_metrics = await _metrics(target)
    rss, peak = target.process.stats.memory_mib()
    wall_s = end["t"] - start["t"]
    return Figures(
        target=target.name, load=load,
        accepted_per_s=load.window_spans / load.window_s,
        delivered_per_s=(end["tally"] - start["tally"]) / wall_s,
        cpu_pct=(end["cpu"] - start["cpu"]) / wall_s * 100,
        downstream_cpu_pct=(end["downstream_cpu"] - start["downstream_cpu"]) / wall_s * 100,
        rss_mib=rss, peak_rss_mib=peak, peak_is_per_scenario=per_scenario_peak,
        dropped=expected - received,
        metrics={**{k: after_metrics[k] - before_metrics[k] for k in after_metrics if k != _QUEUE},
                 "queue_size_max": queue_peak[0]},
    )


async def _snapshot(target: Target) -> dict[str, float]:
    downstream_cpu = target.downstream.stats.cpu_s() if target.downstream is not None else 0.0
    return {"t": time.perf_counter(), "cpu": target.process.stats.cpu_s(), "downstream_cpu": downstream_cpu,
            "tally": await target.tally.get()}


async def _watch_queue(target: Target, peak: list[float]) -> None:
    """Keeps `peak[0]` at the longest sending queue seen, sampled 4 times a second (a scrape costs ~1 ms)."""
    if target.metrics_port is None:
        return
    while True:
        peak[0] = max(peak[0], (await _metrics(target))[_QUEUE])
        await asyncio.sleep(0.25)


async def _metrics(target: Target) -> dict[str, float]:
    if target.metrics_port is None:
        return dict.fromkeys(METRICS, 0.0)
    return await scrape_metrics(target.metrics_port)


async def _drained(tally: SpanTally, expected: int) -> int:
    """Waits until `expected` spans arrived (or the deadline passed, or arrivals stopped) and returns the count."""
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    received = await tally.get()
    last_change = time.monotonic()
    while received < expected and time.monotonic() < deadline and time.monotonic() - last_change < 5:
        await asyncio.sleep(0.05)
        now = await tally.get()
        if now != received:
            received, last_change = now, time.monotonic()
    return received
