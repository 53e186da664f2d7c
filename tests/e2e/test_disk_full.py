"""A full disk under file_storage: requests are refused as retryable (not 500) and the health check names the store;
delivered rows are still deleted (from the storage's space reserve), so nothing is sent twice; requests are accepted
again once there is space. Runs on a small tmpfs of its own (root can mount one here and in CI)."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from tests.processor.processors.judge_queue.test_stage import judging_config, rag_trace
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.requests import export_request
from tests.support.waiting import eventually
from tracejudge.processor.service.service import Service

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Takes every free byte of `disk`; delete the file to give the space back."""
    ballast = disk / "ballast"
    with contextlib.suppress(OSError), open(ballast, "wb", buffering=0) as f:
        for size in (65536, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    with pytest.raises(OSError) as full:
        (disk / "probe").write_bytes(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return ballast


async def test_a_full_disk_is_a_retryable_refusal_and_space_coming_back_recovers(small_disk: Path) -> None:
    async with CaptureServer() as downstream:
        config = judging_config(downstream.endpoint, "http://127.0.0.1:1/v1", small_disk, local="none").replace(
            "    tls:\n      insecure: true\n",
            "    tls:\n      insecure: true\n    sending_queue: {storage: file_storage}\n", 1).replace(
            "  extensions: [file_storage]", "  extensions: [file_storage]\n  telemetry: {metrics: {address: ''}}")
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            export = channel.unary_unary(EXPORT)
            await export(export_request(spans=2).SerializeToString(), timeout=10)
            ballast = fill(small_disk)
            request, _ = rag_trace()  # an LLM span: the judge queue must be written too
            for payload in (export_request(spans=2).SerializeToString(), request.SerializeToString()):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await export(payload, timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
            ballast.unlink()
            await export(request.SerializeToString(), timeout=10)
            await downstream.wait_for_requests(2)


def two_exporters_config(memory: str, disk: str, data: Path) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
exporters:
  otlp/memory:
    endpoint: "{memory}"
    tls: {{insecure: true}}
  otlp/disk:
    endpoint: "{disk}"
    tls: {{insecure: true}}
    timeout: 30s
    sending_queue: {{storage: file_storage}}
extensions:
  file_storage: {{directory: "{data}", reserve_mib: 1}}
  health_check: {{endpoint: "127.0.0.1:0"}}
service:
  extensions: [file_storage, health_check]
  telemetry: {{metrics: {{address: ""}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp/memory, otlp/disk]}}
"""


async def health(service: Service) -> tuple[int, dict[str, object]]:
    url = f"http://127.0.0.1:{service.extensions['health_check'].port}/"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


def rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        (count,) = db.execute("SELECT count(*) FROM queue").fetchone()
        return int(count)


async def test_a_full_disk_degrades_health_drains_from_the_reserve_and_sends_nothing_twice(small_disk: Path) -> None:
    first, refused, later = (export_request(spans=2).SerializeToString() for _ in range(3))
    async with CaptureServer() as memory, CaptureServer() as disk:
        config = two_exporters_config(memory.endpoint, disk.endpoint, small_disk)
        disk.hold()  # the backend hangs: `first` stays in the disk queue, in flight
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            export = channel.unary_unary(EXPORT)
            assert (small_disk / "space-reserve").stat().st_size == 1024 * 1024
            await export(first, timeout=10)
            await eventually(lambda: disk.calls >= 1, what="the disk exporter sending")
            ballast = fill(small_disk)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await export(refused, timeout=10)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE, error.value.details()
            status, body = await health(service)
            assert status == 200 and "otlp_disk_queue.db" in body["degraded"]["exporters/otlp/disk"]  # type: ignore[index]

            disk.release()  # the backend is back: delivering `first` means deleting its row on a full disk
            assert await service.delivered(timeout_s=20) == 0
            assert rows(small_disk / "otlp_disk_queue.db") == 0
            status, body = await health(service)
            assert "reserve was given back" in body["degraded"]["extensions/file_storage"]  # type: ignore[index]

            ballast.unlink()  # space is back: the retry is taken, and nothing was left behind half-way
            await export(refused, timeout=10)
            await export(later, timeout=10)
            assert await service.delivered(timeout_s=20) == 0
            await eventually(lambda: (small_disk / "space-reserve").exists(), timeout_s=15,
                             what="the reserve taken again")
            status, body = await health(service)
            assert (status, body.get("degraded")) == (200, None)
        # a restart sends nothing again: every delivered row was deleted
        async with running(config) as service:
            assert service.exporters["traces", "otlp/disk"].pending() == 0
    for backend in (memory, disk):
        assert backend.requests == [first, refused, later]  # `refused` once: the memory exporter gave it back
