"""Sending queues: the disk queue keeps what was acknowledged through a crash (`kill -9`) and a restart."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc

from tests.support.otlp_capture import CaptureServer
from tests.support.process import free_port, tracejudge
from tests.support.requests import export_request
from tracejudge.processor.exporters.helper.sending_queue import DiskQueue, MemoryQueue

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def test_disk_queue_gives_back_unfinished_items_after_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "queue.db")
    queue = DiskQueue(path, capacity=2, sizer="requests")
    queue.put(b"first", 1)
    queue.put(b"second", 2)
    assert not queue.has_room(1, 1)
    first = await queue.get()
    queue.done(first)
    taken = await queue.get()  # taken, never finished: the process "crashes" here
    assert (first.payload, taken.payload) == (b"first", b"second")
    queue.close()
    reopened = DiskQueue(path, capacity=10, sizer="bytes")
    assert (reopened.pending(), reopened.size()) == (1, len(b"second"))
    again = await reopened.get()
    assert (again.payload, again.item_count) == (b"second", 2)
    reopened.done(again)
    reopened.close()
    assert DiskQueue(path, capacity=2, sizer="requests").pending() == 0


async def test_capacity_counts_what_waits_not_what_is_in_flight() -> None:
    queue = MemoryQueue(capacity=1, sizer="requests")
    queue.put(b"a", 1)
    assert not queue.has_room(1, 1)
    await queue.get()
    assert queue.has_room(1, 1) and queue.pending() == 1


def test_sizers_count_requests_spans_or_bytes() -> None:
    by_items, by_bytes = MemoryQueue(capacity=10, sizer="items"), MemoryQueue(capacity=100, sizer="bytes")
    by_items.put(b"x" * 60, 6)
    by_bytes.put(b"x" * 60, 6)
    assert by_items.size() == 6 and by_bytes.size() == 60
    assert by_items.has_room(4, 1000) and not by_items.has_room(5, 1)
    assert by_bytes.has_room(100, 40) and not by_bytes.has_room(1, 41)


def test_an_empty_queue_takes_an_item_larger_than_its_capacity() -> None:
    queue = MemoryQueue(capacity=10, sizer="bytes")
    assert queue.has_room(1, 1_000)  # refusing it would make its sender retry for ever


async def test_acknowledged_spans_survive_kill_9_and_are_delivered_after_restart(tmp_path: Path) -> None:
    receiver_port, downstream_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{receiver_port}"}}
exporters:
  otlp:
    endpoint: 127.0.0.1:{downstream_port}
    tls: {{insecure: true}}
    sending_queue: {{storage: file_storage}}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms}}
extensions:
  file_storage: {{directory: "{tmp_path / 'data'}"}}
service:
  extensions: [file_storage]
  telemetry: {{metrics: {{address: ""}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
""")
    payloads = [export_request(spans=3).SerializeToString() for _ in range(4)]
    with tracejudge(config) as process:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{receiver_port}") as channel:
            for payload in payloads:
                await channel.unary_unary(EXPORT)(payload, timeout=10)  # acknowledged; downstream is down
        process.send_signal(signal.SIGKILL)
    async with CaptureServer(downstream_port) as downstream:
        with tracejudge(config):
            await downstream.wait_for_requests(4, timeout_s=20)
        assert sorted(downstream.requests) == sorted(payloads)


async def test_a_withdrawn_item_is_neither_sent_nor_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "queue.db")
    for queue in (MemoryQueue(capacity=10, sizer="bytes"), DiskQueue(path, capacity=10, sizer="bytes")):
        queue.put(b"kept", 1)
        queue.withdraw(queue.put(b"given back", 1))
        assert (queue.pending(), queue.size()) == (1, len(b"kept"))
        assert (await queue.get()).payload == b"kept"
        assert queue.waiting() == []
        queue.close()
    assert DiskQueue(path, capacity=10, sizer="bytes").pending() == 1  # only "kept", never delivered
