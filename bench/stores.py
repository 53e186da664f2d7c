"""What a sampled span costs to enqueue, SQLite against PostgreSQL (a loopback server of Debian's package, started
here): the judge queue's reserve and commit of one request's items, as the receive path does them before the
ack, per span. Run: `python -m bench.stores` (part of `make bench`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support.postgres import PostgresServer
from tracejudge.judge import queue
from tracejudge.judge.queue import Document, JudgeQueue, JudgeQueueConfig, NewItem
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.postgres import PostgresDatabase
from tracejudge.processor.component.sqlite import SqliteDatabase

METRICS = ("faithfulness", "relevancy")
BODY = {"query": "What is the capital of France?", "response": "Paris is the capital of France." * 8,
        "probability": 0.1, "service": "shop", "prompt_version": "v1"}


def per_span_us(database: Database, requests: int, sampled: int) -> float:
    """µs per sampled span: `requests` requests of `sampled` spans (two metrics each) and their trace's documents,
    reserved then committed as an accepted request is."""
    work = JudgeQueue(database, JudgeQueueConfig(max_items=10_000_000), "1")
    span = 0
    started = time.perf_counter()
    for request in range(requests):
        trace = f"{request:032x}"
        items = [NewItem(f"{span + i:016x}", trace, metric, BODY) for i in range(sampled) for metric in METRICS]
        span += sampled
        work.reserve(items)
        work.commit(items, [Document(trace, f"{request:016x}", 0, 0, "Paris is the capital of France.")])
    elapsed = time.perf_counter() - started
    work.close()
    return elapsed / (requests * sampled) * 1e6


def run(args: argparse.Namespace) -> None:
    print(f"enqueueing sampled spans: {args.requests} requests of {args.sampled} sampled spans (x{len(METRICS)} "
          "metrics), reserve + commit, per span:")
    with tempfile.TemporaryDirectory(prefix="tracejudge-bench-") as tmp, PostgresServer(durable=True) as server:
        sqlite = per_span_us(SqliteDatabase(Path(tmp, "judge_queue.db"), queue.MIGRATIONS, queue.WHAT),
                             args.requests, args.sampled)
        postgres = per_span_us(PostgresDatabase(server.database("bench"), "judge_queue", queue.MIGRATIONS,
                                                queue.WHAT), args.requests, args.sampled)
    print(f"  SQLite (WAL, synchronous=NORMAL)        {sqlite:8.1f} µs/span")
    print(f"  PostgreSQL (loopback, each commit synced) {postgres:7.1f} µs/span   x{postgres / sqlite:.2f} of SQLite")
    print("  (a production PostgreSQL syncs each commit and sits across a network: add a round trip or two per "
          "request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sampled", type=int, default=5, help="sampled spans per request (10% of 50 LLM spans)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
