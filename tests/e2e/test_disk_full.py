"""A full disk under file_storage: requests are refused as retryable (not 500), and accepted again once there is
space. Runs on a small tmpfs of its own (root can mount one here and in CI)."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.processor.processors.judge_queue.test_stage import judging_config, rag_trace
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import grpc_target, running
from tests.support.requests import export_request

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
