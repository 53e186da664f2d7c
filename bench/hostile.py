"""`make fuzz`: hostile input against `tracejudge serve` running the shipped config (otel-config.yaml, every LLM span
sampled): the hand-made requests that once froze or broke it, then fuzzed OTLP (protobuf and JSON, over HTTP and
gRPC) and EvalService requests in four size classes. It prints, per case and size class, the requests tried, their
statuses, how many got a 5xx (or gRPC INTERNAL/UNKNOWN/UNAVAILABLE), the worst event-loop stall (the slowest
answer of a health check polled every 10 ms from a thread of this process while the case runs) and the service's
peak RSS; then its RSS for a minute after an 18 MB LLM span. Figures go to bench/results/hostile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import http.client
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support import shipped

from .procs import Child, python_module

RESULTS = Path(__file__).parent / "results" / "hostile.json"
REPO = Path(__file__).resolve().parent.parent
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SIZE_CLASSES = (("<=1KiB", 1024), ("<=64KiB", 64 * 1024), ("<=1MiB", 1024 * 1024), ("<=20MiB", 20 * 1024 * 1024))
GRPC_LIMIT = 4 * 1024 * 1024  # the receiver's default max_recv_msg_size_mib
SERVER_ERRORS = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}  # UNAVAILABLE, like 503, is a retryable refusal
LLM_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "llm.request.type",
            "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.output.type",
            "llm.input_messages.0.message.content", "llm.output_messages.0.message.content", "input.value",
            "output.value", "openinference.span.kind", "gen_ai.prompt.0.content", "gen_ai.completion.0.content",
            "gen_ai.usage.input_tokens", "tracejudge.feedback.thumbs", "tracejudge.feedback.rating",
            "retrieval.documents.0.document.content", "langfuse.observation.type", "gen_ai.prompt",
            "gen_ai.completion")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- what the service is sent -----------------------------------------------------------------------------------

def llm_request(answer: str = "Paris.", question: str = "What is the capital of France?",
                extra: dict[str, AnyValue] | None = None, start: int = 1_700_000_000_000_000_000) -> bytes:
    """One OTel GenAI chat span (with its answer and question as given) in a trace of its own."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "fuzzed"
    span = resource.scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="chat",
                                                kind=3, start_time_unix_nano=start,
                                                end_time_unix_nano=min(start + 1, 2**64 - 1))
    attrs = span.attributes
    attrs.add(key="gen_ai.operation.name").value.string_value = "chat"
    attrs.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
    attrs.add(key="gen_ai.input.messages").value.string_value = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": question}]}])
    attrs.add(key="gen_ai.output.messages").value.string_value = json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}])
    for key, value in (extra or {}).items():
        attrs.add(key=key).value.CopyFrom(value)
    return request.SerializeToString()


def any_value(rng: random.Random, depth: int = 0) -> AnyValue:
    """A value of any OTLP type, sometimes deeply nested, huge, empty or at a numeric edge."""
    value = AnyValue()
    kind = rng.randrange(9 if depth < 40 else 5)
    if kind == 0:
        value.string_value = rng.choice(["", "[" * rng.randrange(1, 6000), "{" * 3000, "null", "[]", "{}", "🙂" * 50,
                                         json.dumps({"role": "user", "content": [1, None, {"x": "y"}]}),
                                         '[{"role": "assistant", "parts": [{"type": "text"}]}]',
                                         "a" * rng.randrange(0, 5000) + "@", "```" + " " * 3000 + "x",
                                         "\x00\ud7ff", "1" * 400])
    elif kind == 1:
        value.int_value = rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randrange(-1000, 1000)])
    elif kind == 2:
        value.double_value = rng.choice([float("nan"), float("inf"), -0.0, 1e308, rng.random()])
    elif kind == 3:
        value.bool_value = rng.random() < 0.5
    elif kind == 4:
        value.bytes_value = rng.randbytes(rng.randrange(0, 64))
    elif kind in (5, 6):
        for _ in range(rng.randrange(0, 4)):
            value.array_value.values.add().CopyFrom(any_value(rng, depth + 1 + rng.randrange(10)))
    else:
        for n in range(rng.randrange(0, 4)):
            entry = value.kvlist_value.values.add(key=rng.choice(["role", "content", "parts", "type", str(n)]))
            entry.value.CopyFrom(any_value(rng, depth + 1 + rng.randrange(10)))
    return value


def structured(rng: random.Random, size: int) -> bytes:
    """Valid OTLP: LLM spans whose convention attributes hold values of random types and times at the edges,
    padded with text up to about `size` bytes."""
    request = ExportTraceServiceRequest.FromString(llm_request(
        answer="x" * max(0, size - 900 - rng.randrange(0, 200)),
        extra={key: any_value(rng) for key in rng.sample(LLM_KEYS, rng.randrange(1, 8))},
        start=rng.choice([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 1_700_000_000_000_000_000])))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    if rng.random() < 0.2:
        span.end_time_unix_nano = rng.choice([0, 2**64 - 1])
    if rng.random() < 0.1:
        span.parent_span_id = rng.randbytes(rng.choice([0, 8, 3]))
    return request.SerializeToString()


def mutated(rng: random.Random, size: int) -> bytes:
    """Bytes of a valid request with flips, cuts, insertions and repeats: mostly invalid protobuf."""
    body = bytearray(structured(rng, size))
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(max(1, len(body)))
        operation = rng.randrange(4)
        if operation == 0:
            body[at] ^= 1 << rng.randrange(8)
        elif operation == 1:
            del body[at:at + rng.randrange(1, 64)]
        elif operation == 2:
            body[at:at] = rng.randbytes(rng.randrange(1, 16))
        else:
            body[at:at] = body[at:at + 32] * rng.randrange(1, 4)
    return bytes(body[:size])


def as_json(rng: random.Random, size: int) -> bytes:
    """OTLP/JSON: the structured request as JSON, sometimes corrupted or nested far too deep."""
    text = MessageToJson(ExportTraceServiceRequest.FromString(structured(rng, size)))
    choice = rng.randrange(4)
    if choice == 1:
        text = text.replace('"stringValue"', '"arrayValue"', 1)
    elif choice == 2:
        text = '{"resourceSpans": ' + "[" * rng.randrange(100, 100_000) + "]"
    elif choice == 3:
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(['"', "{", "]", "\\u", "1e999999", ""]) + text[at + 1:]
    return text.encode()


def feedback_body(rng: random.Random, size: int) -> bytes:
    """An EvalService feedback body: valid, wrong in its types, or nested far too deep."""
    choice = rng.randrange(4)
    if choice == 0:
        return json.dumps({"feedback": [{"trace_id": os.urandom(16).hex(), "thumbs": rng.choice([1, -1]),
                                         "comment": "x" * min(size, 10_000)}]}).encode()
    if choice == 1:
        return ("[" * rng.randrange(10, min(size, 200_000))).encode()
    if choice == 2:
        return json.dumps({"feedback": [{"trace_id": rng.choice([None, 1, "zz", "0" * 32, []]),
                                         "rating": rng.choice([None, "5", 1e309, -1, [1]]),
                                         "time_unix_nano": rng.choice([2**64, -1, "now"])}]}).encode()
    return rng.randbytes(min(size, 4096))


# -- measuring --------------------------------------------------------------------------------------------------

class StallProbe(threading.Thread):
    """GETs the health check every 10 ms on a connection of its own; the slowest answer while a case runs is that
    case's worst stall (the health check is answered on the same event loop as every receiver)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self._port = port
        self.case = ""
        self.worst: dict[str, float] = collections.defaultdict(float)
        self._stop = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=600)
        while not self._stop.is_set():
            case, started = self.case, time.perf_counter()
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=600)
            if case:
                self.worst[case] = max(self.worst[case], time.perf_counter() - started)
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Tally:
    """Statuses; a 5xx other than 503 (or INTERNAL/UNKNOWN/DATA_LOSS) is a server error: a client loses the batch.
    503/UNAVAILABLE are retryable refusals (overload, a full queue), counted apart."""

    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    server_errors: int = 0
    retryable: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, status: str, what: str) -> None:
        self.statuses[status] += 1
        if status in ("http 503", "grpc UNAVAILABLE"):
            self.retryable += 1
        elif status.startswith("http 5") or status.removeprefix("grpc ") in SERVER_ERRORS:
            self.server_errors += 1
            if len(self.examples) < 5:
                self.examples.append(f"{status}: {what}")


class Service:
    """`tracejudge serve --config otel-config.yaml`, every listener on a free loopback port; with `down_backend`,
    a copy of it that also forwards to an OTLP backend nobody listens on (its queue fills up)."""

    def __init__(self, data: Path, down_backend: bool = False) -> None:
        self.config = shipped.SHIPPED
        if down_backend:
            self.config = data.parent / "down-backend.yaml"
            self.config.write_text(shipped.with_exporter(
                "otlp/down", f"    endpoint: 127.0.0.1:{free_port()}\n    tls: {{insecure: true}}\n"))
        self.ports = {name: free_port() for name in shipped.LISTENERS}
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRACEJUDGE_DATA_DIR": str(data),
                    "TRACEJUDGE_SAMPLE_RATE": "1.0", **shipped.environment(self.ports)}
        self.child: Child | None = None

    async def start(self) -> Child:
        self.child = await Child.start("tracejudge", python_module(
            "tracejudge.processor.cli", "serve", "--config", str(self.config)), self.env)
        await self.child.wait_for("tracejudge is running", timeout_s=120)
        return self.child

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    async def metric(self, session: aiohttp.ClientSession, name: str) -> float:
        async with session.get(self.url("metrics", "/metrics")) as response:
            text = await response.text()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))


async def post(session: aiohttp.ClientSession, url: str, body: bytes, content_type: str,
               encoding: str | None = None) -> str:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    try:
        async with session.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=600)) as r:
            await r.read()
            return f"http {r.status}"
    except aiohttp.ClientError as e:
        return f"http error {type(e).__name__}"


async def export_grpc(channel: grpc.aio.Channel, body: bytes) -> str:
    try:
        await channel.unary_unary(EXPORT)(body, timeout=600)
    except grpc.aio.AioRpcError as e:
        return f"grpc {e.code().name}"
    return "grpc OK"


@dataclass
class Case:
    name: str
    size_class: str
    requests: int = 0
    tally: Tally = field(default_factory=Tally)
    worst_stall_s: float = 0.0
    peak_rss_mib: float = 0.0
    seconds: float = 0.0


class Run:
    def __init__(self, service: Service, child: Child, session: aiohttp.ClientSession, channel: grpc.aio.Channel,
                 probe: StallProbe) -> None:
        self.service, self.child, self.session, self.channel, self.probe = service, child, session, channel, probe
        self.cases: list[Case] = []

    async def case(self, name: str, size_class: str, sends: list[Callable[[], Awaitable[str]]],
                   concurrency: int = 4) -> Case:
        case = Case(name, size_class, len(sends))
        label = f"{name} {size_class}"
        self.child.stats.reset_peak()
        self.probe.case = label
        started = time.perf_counter()
        pending = iter(sends)

        async def worker() -> None:
            for send in pending:
                case.tally.add(await send(), name)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        case.seconds = time.perf_counter() - started
        await asyncio.sleep(0.05)
        self.probe.case = ""
        case.worst_stall_s = self.probe.worst[label]
        case.peak_rss_mib = self.child.stats.memory_mib()[1]
        self.cases.append(case)
        print(f"  {name:<28} {size_class:>8} {case.requests:>6} req  5xx={case.tally.server_errors:<3} "
              f"503={case.tally.retryable:<3} "
              f"stall={case.worst_stall_s * 1000:7.0f} ms  peak={case.peak_rss_mib:6.0f} MiB  "
              f"{dict(case.tally.statuses)}", flush=True)
        return case

    def otlp_http(self, body: bytes, json_body: bool = False, encoding: str | None = None
                  ) -> Callable[[], Awaitable[str]]:
        content_type = "application/json" if json_body else "application/x-protobuf"
        return lambda: post(self.session, self.service.url("http", "/v1/traces"), body, content_type, encoding)

    def otlp_grpc(self, body: bytes) -> Callable[[], Awaitable[str]]:
        return lambda: export_grpc(self.channel, body)

    def feedback(self, body: bytes) -> Callable[[], Awaitable[str]]:
        return lambda: post(self.session, self.service.url("eval_http", "/v1/feedback"), body, "application/json")


def gzip_members(count: int) -> bytes:
    member = gzip.compress(b"")
    return member * count


async def hand_made(run: Run) -> None:
    """The requests of issue 16 that froze the loop, got a 500 or were retried for ever."""
    deep = AnyValue(string_value="[" * 5000)
    as_map = AnyValue()
    as_map.kvlist_value.values.add(key="type").value.string_value = "chat"
    json_out = AnyValue(string_value="json")
    await run.case("email check, 150k chars", "<=1MiB", [run.otlp_http(llm_request("a" * 150_000 + "@"))])
    await run.case("email check, 1 MB", "<=20MiB", [run.otlp_http(llm_request("a" * 1_000_000 + "@"))])
    await run.case("JSON fence", "<=64KiB", [run.otlp_http(llm_request(
        "```" + " " * 4000 + "x", extra={"gen_ai.output.type": json_out}))])
    await run.case("gzip, 300k empty members", "<=20MiB", [run.otlp_http(gzip_members(300_000),
                                                                        encoding="gzip")])
    await run.case("llm.request.type as a map", "<=1KiB", [run.otlp_http(llm_request(
        extra={"llm.request.type": as_map}))])
    await run.case("5000 '[' in a message", "<=64KiB", [run.otlp_http(llm_request(
        extra={"llm.input_messages.0.message.content": deep, "gen_ai.input.messages": deep}))])
    await run.case("start time >= 2^63", "<=1KiB", [run.otlp_http(llm_request(start=2**63 + 5))])
    await run.case("EvalService, deep JSON", "<=1MiB", [run.feedback(b"[" * 500_000)])


async def fuzzed(run: Run, rng: random.Random, scale: float) -> None:
    counts = {"<=1KiB": 800, "<=64KiB": 300, "<=1MiB": 60, "<=20MiB": 6}
    for size_class, limit in SIZE_CLASSES:
        n = max(1, int(counts[size_class] * scale))
        low = 200 if limit == 1024 else limit // 8
        sends = []
        for i in range(n):
            size = rng.randrange(low, limit)
            kind = i % 5
            if kind == 0:
                sends.append(run.otlp_http(structured(rng, size)))
            elif kind == 1:
                sends.append(run.otlp_http(mutated(rng, size)))
            elif kind == 2:
                sends.append(run.otlp_http(as_json(rng, min(size, limit // 2)), json_body=True))
            elif kind == 3 and size < GRPC_LIMIT:
                sends.append(run.otlp_grpc(rng.choice([structured, mutated])(rng, size)))
            elif kind == 3:
                sends.append(run.otlp_http(gzip.compress(structured(rng, size)), encoding="gzip"))
            else:
                sends.append(run.feedback(feedback_body(rng, size)) if size < 4 * 1024 * 1024
                             else run.otlp_http(structured(rng, size)))
        await run.case("fuzzed", size_class, sends, concurrency=4 if limit <= 1024 * 1024 else 2)


async def big_span_memory(run: Run, settle_s: float) -> dict[str, Any]:
    """RSS after one LLM span with an 18 MB answer: at its peak and every 5 s for `settle_s`."""
    await asyncio.sleep(2)
    baseline = run.child.stats.memory_mib()[0]
    await run.case("one 18 MB LLM span", "<=20MiB", [run.otlp_http(llm_request("word " * 3_600_000))])
    samples = []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < settle_s:
        await asyncio.sleep(5)
        samples.append((round(elapsed + 5), round(run.child.stats.memory_mib()[0], 1)))
    print(f"  RSS after the 18 MB span: baseline {baseline:.0f} MiB, peak {run.cases[-1].peak_rss_mib:.0f} MiB, "
          + ", ".join(f"{t}s {m:.0f}" for t, m in samples), flush=True)
    return {"baseline_mib": round(baseline, 1), "peak_mib": round(run.cases[-1].peak_rss_mib, 1),
            "after_s_mib": samples, "above_baseline_at_end_mib": round(samples[-1][1] - baseline, 1)}


async def backend_down(directory: Path, requests: int) -> dict[str, Any]:
    """The shipped config forwarding to a backend that is down as well: 1 MiB requests (in parallel) until the
    sending queue (64 MiB by default) or the memory limiter refuses them. Peak RSS is what the bound holds to."""
    service = Service(directory / "data-down", down_backend=True)
    child = await service.start()
    probe = StallProbe(service.ports["health"])
    probe.start()
    body = ExportTraceServiceRequest()
    resource = body.resource_spans.add()
    scope = resource.scope_spans.add()
    for i in range(64):
        span = scope.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"op {i}")
        span.attributes.add(key="payload").value.string_value = "x" * 16_000
    payload = body.SerializeToString()
    try:
        async with aiohttp.ClientSession() as session, \
                grpc.aio.insecure_channel(f"127.0.0.1:{service.ports['grpc']}") as channel:
            run = Run(service, child, session, channel, probe)
            case = await run.case("backend down, 1 MiB requests", "<=1MiB",
                                  [run.otlp_http(payload) for _ in range(requests)], concurrency=8)
            queued = await service.metric(session, "tracejudge_exporter_queue_size")
    finally:
        probe.stop()
        await child.stop()
    return {"requests": requests, "request_bytes": len(payload), "statuses": dict(case.tally.statuses),
            "peak_rss_mib": round(case.peak_rss_mib, 1), "queued_bytes": queued,
            "worst_stall_ms": round(case.worst_stall_s * 1000, 1)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tracejudge-fuzz-") as tmp:
        service = Service(Path(tmp, "data"))
        child = await service.start()
        probe = StallProbe(service.ports["health"])
        probe.start()
        try:
            async with aiohttp.ClientSession() as session, \
                    grpc.aio.insecure_channel(f"127.0.0.1:{service.ports['grpc']}") as channel:
                run = Run(service, child, session, channel, probe)
                print("warm-up: one LLM span, judged", flush=True)
                await run.case("warm-up", "<=1KiB", [run.otlp_http(llm_request())])
                while await service.metric(session, "tracejudge_judge_verdicts_total") < 1:
                    await asyncio.sleep(0.5)
                memory = await big_span_memory(run, args.settle_s)
                print("hand-made requests", flush=True)
                await hand_made(run)
                print("fuzzed requests", flush=True)
                await fuzzed(run, rng, args.scale)
                waiting = await service.metric(session, "tracejudge_judge_queue_waiting")
        finally:
            probe.stop()
            status = await child.stop()
        down = await backend_down(Path(tmp), int(200 * max(args.scale, 0.5)))
    print(f"  backend down: peak RSS {down['peak_rss_mib']:.0f} MiB, {down['queued_bytes'] / 2**20:.0f} MiB queued, "
          f"statuses {down['statuses']}", flush=True)
    cases = [{"case": c.name, "size_class": c.size_class, "requests": c.requests,
              "statuses": dict(c.tally.statuses), "server_errors": c.tally.server_errors,
              "retryable_refusals": c.tally.retryable,
              "server_error_examples": c.tally.examples, "worst_stall_ms": round(c.worst_stall_s * 1000, 1),
              "peak_rss_mib": round(c.peak_rss_mib, 1), "seconds": round(c.seconds, 2)} for c in run.cases]
    problems = [line for line in child.lines if "Traceback" in line or " ERROR " in line]
    return {"cases": cases, "big_span": memory, "backend_down": down, "judge_items_waiting_at_end": waiting,
            "exit_status": status, "errors_logged": problems[:20], "seed": args.seed, "scale": args.scale}


def report(result: dict[str, Any]) -> None:
    cases = result["cases"]
    print("\nper size class (fuzzed and hand-made):")
    print(f"  {'size class':>10} {'requests':>9} {'5xx':>4} {'503':>4} {'worst stall':>12} {'peak RSS':>9}")
    for size_class, _ in SIZE_CLASSES:
        mine = [c for c in cases if c["size_class"] == size_class and c["case"] != "warm-up"]
        if mine:
            print(f"  {size_class:>10} {sum(c['requests'] for c in mine):>9} "
                  f"{sum(c['server_errors'] for c in mine):>4} {sum(c['retryable_refusals'] for c in mine):>4} "
                  f"{max(c['worst_stall_ms'] for c in mine):>9.0f} ms {max(c['peak_rss_mib'] for c in mine):>5.0f} MiB")
    total = sum(c["requests"] for c in cases)
    errors = sum(c["server_errors"] for c in cases)
    print(f"  all: {total} requests, {errors} 5xx; tracejudge exited with {result['exit_status']}; "
          f"{len(result['errors_logged'])} error line(s) logged")
    for line in result["errors_logged"][:5]:
        print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the number of fuzzed requests")
    parser.add_argument("--settle-s", type=float, default=60.0, help="how long RSS is watched after the 18 MB span")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    report(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    sys.exit(0)


if __name__ == "__main__":
    main()
