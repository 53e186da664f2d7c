"""Repeated `kill -9` under load: every span tracejudge acknowledged must reach the backend, and every sampled LLM span
its evaluation, with each judged span's decision record saying so.

A load client sends requests of 20 spans (a quarter of them LLM spans) on four connections to `tracejudge serve`
(OTLP/gRPC → llm_extract → sampler at 100% → judge_queue with the embedded judge → otlp exporter with a disk sending
queue) while tracejudge is killed with SIGKILL every few seconds and restarted at once; the backend is an OTLP
server in this process that records every span id it receives. Afterwards tracejudge runs until everything is
delivered and judged, and the harness prints: acked, delivered, lost (acked, never delivered: must be 0),
duplicated (copies beyond the first: at-least-once delivery allows some), LLM spans judged, and judged spans whose
decision record does not say so.

    python -m bench.crash --kills 35 --interval-s 4     # what `make fuzz` runs
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
RESULTS = Path(__file__).parent / "results" / "crash.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(ports: dict[str, int], backend: int, data: Path) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports['grpc']}"}}
processors:
  llm_extract:
  sampler: {{rate: 1.0}}
  judge_queue:
    storage: file_storage
    metrics: [relevancy]
    decision_wait: 0s
    max_decision_wait: 0s
    workers: {{poll_interval: 50ms, lease: 5s}}
    judges: {{local: {{judge: embedded}}}}
    stats: {{enabled: false}}
exporters:
  otlp:
    endpoint: "127.0.0.1:{backend}"
    tls: {{insecure: true}}
    sending_queue: {{storage: file_storage}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}}
extensions:
  file_storage: {{directory: "{data}"}}
  health_check: {{endpoint: "127.0.0.1:{ports['health']}"}}
service:
  extensions: [file_storage, health_check]
  telemetry: {{metrics: {{address: ""}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [llm_extract, sampler, judge_queue], exporters: [otlp]}}
"""


class Backend:
    """An OTLP/gRPC server recording how often each span id arrived, and the evaluation spans by their parent."""

    def __init__(self) -> None:
        self.copies: collections.Counter[bytes] = collections.Counter()
        self.evaluated: set[bytes] = set()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(self._export)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)

    async def _export(self, payload: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        request = ExportTraceServiceRequest.FromString(payload)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    if span.name == "tracejudge.evaluation":
                        self.evaluated.add(span.parent_span_id)
                    else:
                        self.copies[span.span_id] += 1
        return ExportTraceServiceResponse().SerializeToString()


def load_request(rng: random.Random, spans: int = 20) -> tuple[bytes, list[bytes], list[bytes]]:
    """A request of `spans` spans in one trace, every fourth an LLM span; with its span ids and LLM span ids."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "crash-load"
    scope = resource.scope_spans.add()
    trace = rng.randbytes(16)
    ids, llm = [], []
    for i in range(spans):
        span = scope.spans.add(trace_id=trace, span_id=rng.randbytes(8), name=f"op {i}", kind=2,
                               start_time_unix_nano=time.time_ns(), end_time_unix_nano=time.time_ns() + 1000)
        ids.append(span.span_id)
        if i % 4 == 0:
            llm.append(span.span_id)
            attrs = span.attributes
            attrs.add(key="gen_ai.operation.name").value.string_value = "chat"
            attrs.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
            attrs.add(key="gen_ai.input.messages").value.string_value = json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": f"What is {i} plus {i}?"}]}])
            attrs.add(key="gen_ai.output.messages").value.string_value = json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": f"It is {2 * i}."}]}])
    return request.SerializeToString(), ids, llm


@dataclass
class CrashResult:
    kills: int
    requests_sent: int = 0
    requests_acked: int = 0
    acked: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    delivered_unacked: int = 0  # in flight at a kill: delivered, never acknowledged (the client would resend)
    llm_acked: int = 0
    llm_evaluated: int = 0
    judged_without_record: int = 0
    seconds: float = 0.0
    restarts_s: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"kill -9 x{self.kills} under load ({self.seconds:.0f} s; restart to healthy "
                f"{_median(self.restarts_s):.1f} s median)",
                f"  requests: {self.requests_sent} sent, {self.requests_acked} acknowledged",
                f"  spans: acked {self.acked}, delivered {self.delivered}, lost {self.lost}, duplicated "
                f"{self.duplicated}, delivered without an ack {self.delivered_unacked}",
                f"  LLM spans: acked {self.llm_acked}, evaluated {self.llm_evaluated}, "
                f"judged without a 'judged' decision record {self.judged_without_record}"]


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


class Tracejudge:
    def __init__(self, config_path: Path, log_path: Path, health_port: int) -> None:
        self._argv = [sys.executable, "-m", "tracejudge.processor.cli", "serve", "--config", str(config_path)]
        self._log_path = log_path
        self._health = f"http://127.0.0.1:{health_port}/"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, timeout_s: float = 120) -> float:
        began = time.monotonic()
        with open(self._log_path, "ab") as log:
            self.process = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
        while not await asyncio.to_thread(self._healthy):
            if self.process.poll() is not None or time.monotonic() - began > timeout_s:
                raise RuntimeError(f"tracejudge did not start; its log: {self._log_path}")
            await asyncio.sleep(0.05)
        return time.monotonic() - began

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self._health, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


async def crash_run(kills: int, interval_s: float, directory: Path, seed: int = 9,
                    settle_timeout_s: float = 180) -> CrashResult:
    rng = random.Random(seed)
    result = CrashResult(kills)
    backend = Backend()
    await backend.start()
    ports = {"grpc": free_port(), "health": free_port()}
    config_path = directory / "config.yaml"
    config_path.write_text(config(ports, backend.port, directory / "data"))
    service = Tracejudge(config_path, directory / "tracejudge.log", ports["health"])
    acked: set[bytes] = set()
    llm_acked: set[bytes] = set()
    stopping = asyncio.Event()
    started = time.monotonic()

    async def client() -> None:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc']}")
        try:
            while not stopping.is_set():
                payload, ids, llm = load_request(rng)
                result.requests_sent += 1
                try:
                    await channel.unary_unary(EXPORT)(payload, timeout=10)
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)  # refused or the process is gone: not acknowledged
                    continue
                result.requests_acked += 1
                acked.update(ids)
                llm_acked.update(llm)
                await asyncio.sleep(0.01)
        finally:
            await channel.close()

    try:
        result.restarts_s.append(await service.start())
        clients = [asyncio.create_task(client()) for _ in range(4)]
        for _ in range(kills):
            await asyncio.sleep(interval_s * rng.uniform(0.5, 1.5))
            service.kill()
            result.restarts_s.append(await service.start())
        await asyncio.sleep(interval_s)
        stopping.set()
        await asyncio.gather(*clients)
        deadline = time.monotonic() + settle_timeout_s
        while time.monotonic() < deadline and not (acked <= backend.copies.keys() and llm_acked <= backend.evaluated):
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)  # the last decision records reach decisions.db
        service.stop()
    finally:
        service.kill()
        await backend.stop()
    result.seconds = time.monotonic() - started
    result.acked, result.llm_acked = len(acked), len(llm_acked)
    result.delivered = len(acked & backend.copies.keys())
    result.lost = len(acked - backend.copies.keys())
    result.duplicated = sum(count - 1 for count in backend.copies.values())
    result.delivered_unacked = len(backend.copies.keys() - acked)
    result.llm_evaluated = len(llm_acked & backend.evaluated)
    judged = _judged_spans(directory / "data" / "decisions.db")
    result.judged_without_record = len({span.hex() for span in backend.evaluated} - judged)
    return result


def _judged_spans(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {row[0] for row in db.execute("SELECT DISTINCT span_id FROM decisions WHERE decision = 'judged'")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=35)
    parser.add_argument("--interval-s", type=float, default=4.0, help="mean time between kills")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracejudge-crash-") as tmp:
        result = asyncio.run(crash_run(args.kills, args.interval_s, Path(tmp), args.seed))
    print("\n".join(result.lines()))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(asdict(result), indent=1) + "\n")
    sys.exit(1 if result.lost or result.llm_evaluated < result.llm_acked or result.judged_without_record else 0)


if __name__ == "__main__":
    main()
