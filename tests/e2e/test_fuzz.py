"""Fuzzing the shipped config end to end: `tracejudge serve --config otel-config.yaml` (every LLM span sampled and
judged by the embedded judge) gets hypothesis-generated OTLP over HTTP and gRPC, and EvalService bodies. Valid OTLP
is always accepted, anything else refused with a 4xx, never a 5xx; the service logs no traceback. `make fuzz`
runs the same with many more examples (HYPOTHESIS_PROFILE=fuzz)."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.support.otlp_strategies import feedback_bodies, mutated, otlp_json, requests
from tests.support.process import TRACEJUDGE, free_port
from tests.support.shipped import LISTENERS, SHIPPED, environment

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass
class Shipped:
    ports: dict[str, int]
    log: Path
    channel: grpc.Channel

    def post(self, port: str, path: str, body: bytes, content_type: str, encoding: str = "") -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[port]}{path}", data=body, method="POST",
                                         headers={"Content-Type": content_type,
                                                  **({"Content-Encoding": encoding} if encoding else {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status)
        except urllib.error.HTTPError as e:
            return int(e.code)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipped]:
    directory = tmp_path_factory.mktemp("shipped")
    ports = {name: free_port() for name in LISTENERS}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRACEJUDGE_DATA_DIR": str(directory / "data"),
           "TRACEJUDGE_SAMPLE_RATE": "1.0", **environment(ports)}
    log = directory / "tracejudge.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([*TRACEJUDGE, "serve", "--config", str(SHIPPED)], env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['health']}/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
            yield Shipped(ports, log, channel)
        text = log.read_text()
        assert "Traceback" not in text, text[text.index("Traceback") - 2000:][:6000]
    finally:
        process.terminate()
        process.wait(timeout=60)


@given(requests())
def test_valid_otlp_is_accepted_whatever_it_holds(shipped: Shipped, body: bytes) -> None:
    assert shipped.post("http", "/v1/traces", body, "application/x-protobuf") == 200
    assert shipped.post("http", "/v1/traces", gzip.compress(body), "application/x-protobuf", "gzip") == 200
    shipped.channel.unary_unary(EXPORT)(body, timeout=60)  # raises unless OK


@given(st.one_of(mutated(), st.binary(max_size=512)))
def test_broken_protobuf_is_refused_never_failed(shipped: Shipped, body: bytes) -> None:
    assert shipped.post("http", "/v1/traces", body, "application/x-protobuf") in (200, 400)
    try:
        shipped.channel.unary_unary(EXPORT)(body, timeout=60)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e  # type: ignore[attr-defined]


@given(otlp_json())
def test_otlp_json_is_taken_or_refused_never_failed(shipped: Shipped, body: bytes) -> None:
    assert shipped.post("http", "/v1/traces", body, "application/json") in (200, 400)


@given(feedback_bodies())
@example(b"null").via("found by make fuzz: a 500")
@example(b'[{"trace_id": "ab"}]')
def test_feedback_bodies_are_taken_or_refused_never_failed(shipped: Shipped, body: bytes) -> None:
    assert shipped.post("eval_http", "/v1/feedback", body, "application/json") in (200, 400)
