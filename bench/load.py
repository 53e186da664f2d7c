"""The load client, run as its own process: sends pre-serialized Export requests as raw bytes over grpc.aio.

Closed loop (`--concurrency N`: N calls always in flight) or open loop (`--rate R`: a call starts every 1/R s
whatever the previous ones do). Prints `measure` when the measured window opens, `done` when it closes, then
`result {json}` once every call has finished, so the parent can sample servers exactly over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass, field

import grpc

from .payloads import build_requests

__all__ = ["EXPORT_METHOD", "LoadResult", "percentile"]

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# After a refusal a closed-loop caller waits this long, as an SDK exporter would back off, instead of spinning.
_REFUSED_BACKOFF_S = 0.05


@dataclass
class LoadResult:
    window_s: float = 0.0
    window_requests: int = 0  # OK calls that completed inside the window
    window_spans: int = 0
    ok_spans_total: int = 0  # every OK call, warm-up and stragglers included: what the server accepted
    refused: dict[str, int] = field(default_factory=dict)  # status code name -> calls, over the whole run
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    client_cpu_pct: float = 0.0  # of one core, over the window
    max_start_lag_ms: float = 0.0  # open loop only: how late the client started a call (0 = kept pace)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Load:
    def __init__(self, args: argparse.Namespace, payloads: list[bytes]) -> None:
        self._args = args
        self._payloads = payloads
        self._latencies: list[float] = []
        self._window: tuple[float, float] = (float("inf"), float("inf"))
        self._stop = asyncio.Event()
        self.result = LoadResult()

    async def run(self) -> LoadResult:
        args = self._args
        compression = grpc.Compression.Gzip if args.gzip else grpc.Compression.NoCompression
        async with grpc.aio.insecure_channel(args.target, compression=compression) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=10)
            export = channel.unary_unary(EXPORT_METHOD)  # no serializers: bytes in, bytes out
            driver = self._open_loop(export) if args.rate else self._closed_loop(export)
            await asyncio.gather(driver, self._clock())
        self._latencies.sort()
        r = self.result
        r.p50_ms, r.p99_ms = percentile(self._latencies, 50) * 1e3, percentile(self._latencies, 99) * 1e3
        r.max_ms = self._latencies[-1] * 1e3 if self._latencies else 0.0
        return r

    async def _clock(self) -> None:
        await asyncio.sleep(self._args.warmup_s)
        start, cpu_start = time.perf_counter(), time.process_time()
        self._window = (start, start + self._args.duration_s)
        print("measure", flush=True)
        await asyncio.sleep(self._args.duration_s)
        end = time.perf_counter()
        print("done", flush=True)
        self.result.window_s = end - start
        self.result.client_cpu_pct = (time.process_time() - cpu_start) / (end - start) * 100
        self._window = (start, end)
        self._stop.set()

    async def _call(self, export: grpc.aio.UnaryUnaryMultiCallable, payload: bytes) -> bool:
        started = time.perf_counter()
        try:
            await export(payload, timeout=self._args.timeout_s)
        except grpc.aio.AioRpcError as e:
            name = e.code().name
            self.result.refused[name] = self.result.refused.get(name, 0) + 1
            return False
        finished = time.perf_counter()
        self.result.ok_spans_total += self._args.spans
        if self._window[0] <= started and finished <= self._window[1]:
            self._latencies.append(finished - started)
            self.result.window_requests += 1
            self.result.window_spans += self._args.spans
        return True

    async def _closed_loop(self, export: grpc.aio.UnaryUnaryMultiCallable) -> None:
        async def worker(index: int) -> None:
            while not self._stop.is_set():
                if not await self._call(export, self._payloads[index % len(self._payloads)]):
                    await asyncio.sleep(_REFUSED_BACKOFF_S)
                index += self._args.concurrency

        await asyncio.gather(*(worker(i) for i in range(self._args.concurrency)))

    async def _open_loop(self, export: grpc.aio.UnaryUnaryMultiCallable) -> None:
        interval = 1 / self._args.rate
        calls: set[asyncio.Task[bool]] = set()
        origin = time.perf_counter()
        index = 0
        while not self._stop.is_set():
            due = origin + index * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif self._window[0] <= due:
                self.result.max_start_lag_ms = max(self.result.max_start_lag_ms, -delay * 1e3)
            task = asyncio.create_task(self._call(export, self._payloads[index % len(self._payloads)]))
            calls.add(task)
            task.add_done_callback(calls.discard)
            index += 1
        await asyncio.gather(*calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, help="host:port of an OTLP/gRPC trace server")
    parser.add_argument("--spans", type=int, default=512, help="spans per request")
    parser.add_argument("--llm-fraction", type=float, default=0.0)
    parser.add_argument("--variants", type=int, default=8, help="distinct requests, sent round-robin")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s, open loop (0: closed loop)")
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--timeout-s", type=float, default=10.0)
    args = parser.parse_args()
    payloads = build_requests(args.spans, args.llm_fraction, args.variants)
    result = asyncio.run(Load(args, payloads).run())
    print("result " + json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
