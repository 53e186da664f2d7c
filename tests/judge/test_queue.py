"""The durable judge queue: committed before the ack, taken once, leased, bounded with a recorded policy; on both
engines (the `open_database` fixture), except what only SQLite's file has (query plans, file size)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.postgres import OpenDatabase
from tracejudge.judge.queue import (
    LEASE_IDS,
    MIGRATIONS,
    RESERVATION_TTL_S,
    WHAT,
    Document,
    JudgeQueue,
    JudgeQueueConfig,
    KeptSpan,
    NewItem,
)
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.sqlite import Retention


def states(db: Database) -> dict[str, str]:
    return dict(db.query("SELECT span_id, state FROM items"))


def item(n: int, metric: str = "faithfulness") -> NewItem:
    return NewItem(span_id=f"{n:016x}", trace_id="ab" * 16, metric=metric, body={"output": f"answer {n}"})


def test_the_same_span_metric_and_judge_version_is_taken_once(open_database: OpenDatabase) -> None:
    queue = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(), judge_version="local-1")
    assert queue.enqueue([item(1), item(1), item(1, "relevancy")]).inserted == 2
    assert queue.enqueue([item(1)]).inserted == 0  # a client's retry of the same request
    assert queue.waiting() == 2
    other_version = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(), judge_version="local-2")
    other_version.enqueue([item(1)])
    assert other_version.waiting() == 3


def test_leases_hand_out_each_item_once_until_they_run_out(open_database: OpenDatabase) -> None:
    now = [1000.0]
    queue = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(), "v", clock=lambda: now[0])
    queue.enqueue([item(1), item(2), item(3)])
    first = queue.lease(2, lease_s=30)
    assert [i.body["output"] for i in first] == ["answer 1", "answer 2"]
    assert [i.span_id for i in queue.lease(10, lease_s=30)] == [item(3).span_id]
    assert queue.lease(10, lease_s=30) == []
    queue.complete([first[0].key])
    now[0] += 31  # the worker holding the rest died
    again = queue.lease(10, lease_s=30)
    assert sorted(i.span_id for i in again) == [item(2).span_id, item(3).span_id]
    assert {i.attempts for i in again} == {2}


def test_committed_items_survive_reopening(open_database: OpenDatabase) -> None:
    queue = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(), "v", clock=lambda: 0.0)
    queue.enqueue([item(1), item(2)])
    queue.lease(1, lease_s=5)
    # no close(): as if the process had been killed
    reopened = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(), "v", clock=lambda: 10.0)
    assert sorted(i.span_id for i in reopened.lease(10, lease_s=5)) == [item(1).span_id, item(2).span_id]


def test_a_full_queue_turns_items_away_as_configured(open_database: OpenDatabase) -> None:
    newest = JudgeQueue(open_database(MIGRATIONS, "a", WHAT), JudgeQueueConfig(2, when_full="drop_new"), "v")
    assert [i.span_id for i in newest.enqueue([item(1), item(2), item(3)]).turned_away] == [item(3).span_id]
    oldest = JudgeQueue(open_database(MIGRATIONS, "b", WHAT), JudgeQueueConfig(2, when_full="drop_oldest"), "v")
    oldest.enqueue([item(1), item(2)])
    assert [i.span_id for i in oldest.enqueue([item(3)]).turned_away] == [item(1).span_id]
    assert sorted(i.span_id for i in oldest.lease(10, 5)) == [item(2).span_id, item(3).span_id]
    assert states(oldest._db)[item(1).span_id] == "dropped"


def test_kept_spans_expire_in_small_steps_and_keep_their_documents_meanwhile(open_database: OpenDatabase) -> None:
    now = [0.0]
    queue = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(), "v", clock=lambda: now[0])
    for n in range(500):  # one kept span per trace, one per second
        now[0] = float(n)
        queue.enqueue([], [Document(f"{n:032x}", "r", 0, 0, f"doc {n}")], [KeptSpan(f"{n:016x}", f"{n:032x}", {})])
    queue.forget_documents()
    assert len(queue.documents(f"{n:032x}" for n in range(500))) == 500  # kept traces keep their context
    now[0] = 600.0
    # older than 300 s: spans 0..299; at most 200 per step
    assert queue.forget_kept(300, 10_000, limit=200) == 200
    assert queue.forget_kept(300, 10_000, limit=200) == 100
    assert queue.forget_kept(300, 10_000, limit=200) == 0
    assert [k.span_id for k in queue.kept([f"{299:032x}", f"{300:032x}"])] == [f"{300:016x}"]
    # beyond max_kept: the oldest go first
    assert queue.forget_kept(3600, 150, limit=200) == 50
    assert [k.span_id for k in queue.kept([f"{349:032x}", f"{350:032x}"])] == [f"{350:016x}"]
    queue.forget_documents()
    assert set(queue.documents(f"{n:032x}" for n in range(500))) == {f"{n:032x}" for n in range(350, 500)}


def test_leasing_decides_from_covering_indexes_and_reads_only_the_bodies_it_hands_out(tmp_path: Path) -> None:
    """Before, the lease query read every waiting row up to its ready and lease columns, which follow the body:
    with a backlog of big LLM spans the event loop stalled for seconds (health check 13.5 s)."""
    queue = JudgeQueue(str(tmp_path / "q.db"), JudgeQueueConfig(), "v")
    sql = f"EXPLAIN QUERY PLAN {LEASE_IDS['sqlite']}"
    plan = [row[3] for row in sqlite3.connect(tmp_path / "q.db").execute(sql, (0, 0, 1))]
    lookups = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert lookups and all("USING COVERING INDEX" in step for step in lookups), plan
    big = {"output": "x" * 200_000}
    queue.enqueue([NewItem(f"{n:016x}", "ab" * 16, "faithfulness", big, ready_unix_s=2e9) for n in range(20)])
    queue.enqueue([item(99)])
    assert [i.span_id for i in queue.lease(5, lease_s=30)] == [item(99).span_id]


def test_reserved_items_wait_for_their_request_to_be_accepted_or_refused(open_database: OpenDatabase) -> None:
    now = [1000.0]
    queue = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(max_items=3), "v",
                       clock=lambda: now[0])
    queue.enqueue([item(1)])
    assert queue.reserve([item(1), item(2)]).inserted == 1  # a retry of an accepted request adds nothing
    first = queue.lease(10, lease_s=30)
    assert [i.span_id for i in first] == [item(1).span_id]  # reserved: not leased
    queue.cancel([item(1), item(2)])  # refused: the reservation goes, the item of the earlier request stays
    assert queue.waiting() == 1
    assert queue.reserve([item(2), item(3)]).inserted == 2
    assert queue.reserve([item(4)]).turned_away == [item(4)]  # reserved items count against max_items
    queue.commit([item(2), item(3)], [Document("ab" * 16, "cd" * 8, 0, 1, "doc")])
    second = queue.lease(10, lease_s=30)
    assert sorted(i.span_id for i in second) == [item(2).span_id, item(3).span_id]
    assert queue.documents(["ab" * 16])["ab" * 16][0].content == "doc"
    queue.complete(i.key for i in [*first, *second])
    assert queue.reserve([item(5)]).inserted == 1
    queue.close()
    # after a crash, the reservation of a request never answered stays a while (another process sharing the queue
    # may be answering its own), and the request's retry commits it
    reopened = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(max_items=3), "v",
                          clock=lambda: now[0])
    assert reopened.lease(10, lease_s=30) == [] and reopened.reserve([item(5)]).inserted == 0
    reopened.commit([item(5)])
    assert [i.span_id for i in reopened.lease(10, lease_s=30)] == [item(5).span_id]
    reopened.reserve([item(6)])
    now[0] += RESERVATION_TTL_S + 1
    reopened.close()
    later = JudgeQueue(open_database(MIGRATIONS, "q", WHAT), JudgeQueueConfig(max_items=3), "v",
                       clock=lambda: now[0])
    assert later.reserve([item(6)]).inserted == 1  # one never answered, older than any client waits, is gone


def test_retention_deletes_finished_items_by_age_then_by_size_and_never_waiting_ones(tmp_path: Path) -> None:
    now = [1000.0]
    queue = JudgeQueue(str(tmp_path / "q.db"), JudgeQueueConfig(), "1", clock=lambda: now[0])
    big = {"response": "x" * 20_000}
    queue.enqueue([NewItem(f"{n:016x}", "ab" * 16, "faithfulness", big) for n in range(300)])
    queue.complete([item.key for item in queue.lease(200, 30)])  # 200 judged at t=1000, 100 still waiting
    now[0] += 86400
    queue.complete([item.key for item in queue.lease(50, 30)])  # 50 judged a day later
    assert queue.prune(Retention(max_age=3600, max_mib=0), limit=1000) == 200  # the day-old ones
    assert queue.prune(Retention(max_age=3600, max_mib=0), limit=1000) == 0
    assert queue.waiting() == 50
    size = (tmp_path / "q.db").stat().st_size
    assert queue.prune(Retention(max_age=86400 * 30, max_mib=1), limit=1000) == 50  # over 1 MiB: the oldest go
    assert queue.waiting() == 50  # waiting items are not retention's to delete
    queue.close()
    assert (tmp_path / "q.db").stat().st_size < size  # and the space went back to the file system


def test_under_drop_oldest_a_refused_reservation_gives_the_displaced_items_back(open_database: OpenDatabase) -> None:
    config = JudgeQueueConfig(max_items=2, when_full="drop_oldest")
    refused = JudgeQueue(open_database(MIGRATIONS, "a", WHAT), config, "1")
    refused.enqueue([item(1), item(2)])
    reservation = refused.reserve([item(3)])
    assert [i.span_id for i in reservation.turned_away] == [item(1).span_id] and len(reservation.displaced) == 1
    assert [i.span_id for i in refused.lease(10, 30)] == [item(2).span_id]  # a displaced item is not leased
    refused.cancel([item(3)], reservation.displaced)
    assert [i.span_id for i in refused.lease(10, 30)] == [item(1).span_id]  # queued again: its request was refused
    assert states(refused._db) == {item(1).span_id: "leased", item(2).span_id: "leased"}

    accepted = JudgeQueue(open_database(MIGRATIONS, "b", WHAT), config, "1")
    accepted.enqueue([item(1), item(2)])
    reservation = accepted.reserve([item(3)])
    accepted.commit([item(3)], displaced=reservation.displaced)
    assert states(accepted._db) == {item(1).span_id: "dropped", item(2).span_id: "queued",
                                         item(3).span_id: "queued"}
    crashed = JudgeQueue(open_database(MIGRATIONS, "c", WHAT), config, "1", clock=lambda: 0.0)
    crashed.enqueue([item(1), item(2)])
    crashed.reserve([item(3)])
    crashed.close()  # killed before the request was answered, never sent again: what it displaced is queued
    later = JudgeQueue(open_database(MIGRATIONS, "c", WHAT), config, "1", clock=lambda: RESERVATION_TTL_S + 1)
    assert states(later._db) == {item(1).span_id: "queued", item(2).span_id: "queued"}
