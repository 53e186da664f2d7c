"""The durable judge queue: sampled LLM spans waiting to be judged, in SQLite (WAL), one row per span and metric.

Contract: `enqueue` commits before it returns, so an Export call acknowledged after it cannot lose its sampled spans;
the same (span, metric, judge version) is taken once whatever the retries (INSERT OR IGNORE). Workers `lease` items
for a while and `complete` them; a lease that runs out (the worker died, or the process was killed) makes the item
available again, so every committed item is judged at least once more or is already done. The queue is bounded:
when full, `when_full` says what gives way, and every item turned away is returned to the caller to be recorded.
Used from one thread (the event loop): the writes are small WAL appends.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tracejudge.processor.errors import ConfigError

WhenFull = Literal["drop_new", "drop_oldest"]

# Each entry is a migration; the database's user_version says how many have run.
_MIGRATIONS = (
    """CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        span_id TEXT NOT NULL, trace_id TEXT NOT NULL, metric TEXT NOT NULL, judge_version TEXT NOT NULL,
        body TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued', lease_until REAL NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0, enqueued_unix_s REAL NOT NULL, done_unix_s REAL,
        UNIQUE (span_id, metric, judge_version))""",
    "CREATE INDEX items_state ON items (state, id)",
)


@dataclass(frozen=True)
class JudgeQueueConfig:
    max_items: int = 100_000  # waiting (queued or leased) items
    when_full: WhenFull = "drop_new"

    def validate(self, path: str) -> None:
        if self.max_items < 1:
            raise ConfigError(f"{path}.max_items: must be at least 1")


@dataclass(frozen=True, slots=True)
class JudgeItem:
    key: int
    span_id: str
    trace_id: str
    metric: str
    judge_version: str
    body: dict[str, Any]  # what the judge needs, as JSON
    attempts: int


@dataclass(frozen=True, slots=True)
class NewItem:
    span_id: str
    trace_id: str
    metric: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Enqueued:
    inserted: int  # new items (a retried request's items are already there and not counted)
    turned_away: list[NewItem]


class JudgeQueue:
    def __init__(self, path: str, config: JudgeQueueConfig, judge_version: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._judge_version = judge_version
        self._clock = clock
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # survives kill -9; an OS crash may lose the last commits
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, statement in enumerate(_MIGRATIONS[version:], start=version + 1):
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {number}")
        except sqlite3.Error as e:
            raise OSError(f"cannot open the judge queue {path}: {e}") from e

    def close(self) -> None:
        self._db.close()

    def waiting(self) -> int:
        """Items queued or leased: not yet judged, given up on or dropped."""
        (count,) = self._db.execute("SELECT count(*) FROM items WHERE state IN ('queued', 'leased')").fetchone()
        return int(count)

    def enqueue(self, items: Sequence[NewItem]) -> Enqueued:
        """Commit `items` (already known ones are ignored) and say how many were new and which were turned away
        because the queue is full: the newest under drop_new; under drop_oldest, the oldest waiting ones."""
        if not items:
            return Enqueued(0, [])
        now = self._clock()
        turned_away: list[NewItem] = []
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            room = self._config.max_items - self.waiting()
            accepted = list(items)
            if len(accepted) > room:
                if self._config.when_full == "drop_new":
                    turned_away, accepted = accepted[max(room, 0):], accepted[:max(room, 0)]
                else:
                    turned_away = self._drop_oldest(len(accepted) - max(room, 0))
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO items (span_id, trace_id, metric, judge_version, body, enqueued_unix_s) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(i.span_id, i.trace_id, i.metric, self._judge_version, json.dumps(i.body), now) for i in accepted])
            inserted = self._db.total_changes - before
        return Enqueued(inserted, turned_away)

    def lease(self, limit: int, lease_s: float) -> list[JudgeItem]:
        """Up to `limit` items nobody holds (never leased, or their lease ran out), held for `lease_s`."""
        now = self._clock()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute(
                "SELECT id, span_id, trace_id, metric, judge_version, body, attempts FROM items "
                "WHERE state = 'queued' OR (state = 'leased' AND lease_until < ?) ORDER BY id LIMIT ?",
                (now, limit)).fetchall()
            self._db.executemany("UPDATE items SET state = 'leased', lease_until = ?, attempts = attempts + 1 "
                                 "WHERE id = ?", [(now + lease_s, row[0]) for row in rows])
        return [JudgeItem(key, span, trace, metric, version, json.loads(body), attempts + 1)
                for key, span, trace, metric, version, body, attempts in rows]

    def complete(self, keys: Iterable[int]) -> None:
        """Mark items judged (or given up on, with the reason recorded by the caller). Idempotent."""
        now = self._clock()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE items SET state = 'done', done_unix_s = ? WHERE id = ?",
                                 [(now, key) for key in keys])

    def _drop_oldest(self, count: int) -> list[NewItem]:
        rows = self._db.execute("SELECT id, span_id, trace_id, metric, body FROM items WHERE state = 'queued' "
                                "ORDER BY id LIMIT ?", (count,)).fetchall()
        self._db.executemany("UPDATE items SET state = 'dropped', done_unix_s = ? WHERE id = ?",
                             [(self._clock(), row[0]) for row in rows])
        return [NewItem(span, trace, metric, json.loads(body)) for _, span, trace, metric, body in rows]
