"""Counts read from outside the processes under test: tracejudge's /metrics, and the no-op servers' span tally."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from .noop_server import COUNTER_METHOD

__all__ = ["METRICS", "SpanTally", "scrape_metrics"]

# tracejudge's own counts, summed over their labels (receiver, transport, exporter).
METRICS = (
    "tracejudge_receiver_accepted_spans_total",
    "tracejudge_receiver_refused_spans_total",
    "tracejudge_exporter_sent_spans_total",
    "tracejudge_exporter_send_failed_spans_total",
    "tracejudge_exporter_enqueue_failed_spans_total",
    "tracejudge_exporter_queue_size",
    "tracejudge_llm_spans_extracted_total",
    "tracejudge_decisions_dropped_total",
)


async def scrape_metrics(port: int) -> dict[str, float]:
    """The METRICS from http://127.0.0.1:<port>/metrics; absent ones (no label set seen yet) are 0."""
    text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    totals = dict.fromkeys(METRICS, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


class SpanTally:
    """How many spans a bench.noop_server has received so far."""

    def __init__(self, port: int) -> None:
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self._count = self._channel.unary_unary(COUNTER_METHOD)

    async def get(self) -> int:
        reply: bytes = await self._count(b"", timeout=5)
        return int(reply)

    async def close(self) -> None:
        await self._channel.close()
