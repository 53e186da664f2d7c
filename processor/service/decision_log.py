"""Decision records: what happened to each LLM span, kept in a store (SQLite by default; PostgreSQL for a fleet,
whose instances then answer for each other's spans) so "why wasn't this evaluated?" has an answer.

The log owns its database and a single thread that does every read and write. Records are handed over without
waiting and written in batches, one transaction each, every FLUSH_INTERVAL_S or every _BATCH records, whichever
comes first; reads per trace id see everything handed over before them. Records whose loss a crash must not cause
(those about judge queue items, relayed from the queue's outbox) are written at once and awaited (`write`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from tracejudge.processor.component.database import Database, shrink
from tracejudge.processor.component.decisions import Decision
from tracejudge.processor.component.errors import StorageError
from tracejudge.processor.component.sqlite import Retention, SqliteDatabase
from tracejudge.processor.component.telemetry import Telemetry

log = logging.getLogger(__name__)

# Each entry is a migration (both engines run them, see processor/component/database.py).
MIGRATIONS = (
    """CREATE TABLE decisions (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, decision TEXT NOT NULL,
        service TEXT NOT NULL, convention TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL,
        recorded_unix_s REAL NOT NULL, PRIMARY KEY (trace_id, span_id, decision))""",
    # One row per stage and metric: judged and unjudged records are per metric, with their scores as JSON.
    """CREATE TABLE decisions_2 (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, decision TEXT NOT NULL,
        service TEXT NOT NULL, convention TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL,
        recorded_unix_s REAL NOT NULL, metric TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (trace_id, span_id, metric, decision));
    INSERT INTO decisions_2 (trace_id, span_id, decision, service, convention, model, prompt_version,
        recorded_unix_s) SELECT * FROM decisions;
    DROP TABLE decisions;
    ALTER TABLE decisions_2 RENAME TO decisions""",
    "CREATE INDEX decisions_time ON decisions (recorded_unix_s)",  # retention deletes the oldest first
)

WHAT = "the decision log"
_COLUMNS = "trace_id, span_id, decision, service, convention, model, prompt_version, recorded_unix_s, metric, detail"
_KEY = "trace_id, span_id, metric, decision"
_BATCH = 512
FLUSH_INTERVAL_S = 0.5
PRUNE_INTERVAL_S = 10.0  # how often retention looks for records to delete (at once again while it finds many)
PRUNE_ROWS = 1000  # per step


class DecisionLogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "tracejudge_decisions_dropped", "Decision records not kept because the decision log fell behind.",
            registry=registry)


def sqlite_decisions(path: str | Path, read_only: bool = False) -> Database:
    """A decision log in a SQLite file (":memory:": only while the process runs)."""
    return SqliteDatabase(path, MIGRATIONS, WHAT, read_only)


class DecisionLog:
    """`store` opens the log's database (on the log's own thread), or is the path of a SQLite file (":memory:"
    keeps decisions only while the process runs).

    `record` never blocks the caller: with more than `max_pending` records waiting to be written,
    new ones are counted as dropped and logged, not silently lost.
    """

    def __init__(self, store: str | Callable[[], Database], telemetry: Telemetry, max_pending: int = 100_000,
                 retention: Retention | None = None) -> None:
        self._open = functools.partial(sqlite_decisions, store) if isinstance(store, str) else store
        self._retention = retention or Retention()
        self._pruned_at = 0.0
        self._dropped = telemetry.metrics(DecisionLogMetrics).dropped
        self._requests: queue.Queue[Callable[[Database], None] | None] = queue.Queue()
        self._pending: list[Decision] = []
        self._pending_lock = threading.Lock()
        self._max_pending = max_pending
        self._thread: threading.Thread | None = None
        self._ready: Future[None] = Future()

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def shutdown(self) -> None:
        if self._thread is None:
            return
        self._requests.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def record(self, records: Iterable[Decision]) -> None:
        """Hand records over to be written; never blocks (see the class docstring)."""
        records = list(records)
        with self._pending_lock:
            room = max(0, self._max_pending - len(self._pending))
            self._pending.extend(records[:room])
            backlog = len(self._pending)
        if len(records) > room:
            dropped = len(records) - room
            self._dropped.inc(dropped)
            log.warning("decision log is %d records behind; %d decision record(s) not kept", self._max_pending,
                        dropped)
        if backlog >= _BATCH:
            self._requests.put(self._flush)

    async def write(self, records: Sequence[Decision]) -> None:
        """Write `records` (after those handed over before them) and return once they are committed."""
        if self._thread is None:
            raise RuntimeError("the decision log is not running")
        done: Future[None] = Future()

        def write(db: Database) -> None:
            if not done.set_running_or_notify_cancel():  # the caller stopped waiting (shutdown): it keeps them
                return
            try:
                self._flush(db)
                self._insert(db, records)
            except Exception as e:  # the caller keeps the records and tries again
                done.set_exception(e)
                return
            done.set_result(None)

        self._requests.put(write)
        await asyncio.wrap_future(done)

    async def for_trace(self, trace_id: str) -> list[Decision]:
        if self._thread is None:
            raise RuntimeError("the decision log is not running")
        result: Future[list[Decision]] = Future()

        def query(db: Database) -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                self._flush(db)
                found = _for_trace(db, trace_id)
            except Exception as e:  # the caller gets the error instead of waiting for ever
                result.set_exception(e)
                return
            result.set_result(found)

        self._requests.put(query)
        return await asyncio.wrap_future(result)

    def _run(self) -> None:
        try:
            db = self._open()
        except StorageError as e:
            self._ready.set_exception(e)
            return
        self._ready.set_result(None)
        while True:
            try:
                request = self._requests.get(timeout=FLUSH_INTERVAL_S)
            except queue.Empty:
                request = self._flush
            if request is None:
                break
            try:
                request(db)
                if time.monotonic() - self._pruned_at > PRUNE_INTERVAL_S:
                    self.prune(db)
            except Exception:  # a failed write must not stop the log
                log.exception("decision log: database request failed")
        self._flush(db)
        db.close()

    def _flush(self, db: Database) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for start in range(0, len(pending), _BATCH):
            self._insert(db, pending[start:start + _BATCH])

    def prune(self, db: Database) -> int:
        """One step of retention: records older than max_age, then the oldest while the store is over max_mib."""
        retention = self._retention
        with db.write() as tx:
            tx.execute(f"DELETE FROM decisions WHERE ({_KEY}) IN (SELECT {_KEY} FROM decisions WHERE "
                       "recorded_unix_s < ? ORDER BY recorded_unix_s LIMIT ?)", (time.time() - retention.max_age,
                                                                                PRUNE_ROWS))
            deleted = tx.changed
            deleted += shrink(tx, "decisions", retention.max_mib, f"DELETE FROM decisions WHERE ({_KEY}) IN "
                              f"(SELECT {_KEY} FROM decisions ORDER BY recorded_unix_s LIMIT ?)", PRUNE_ROWS - deleted)
        db.give_back()
        # many found: look again at the next tick
        self._pruned_at = 0.0 if deleted >= PRUNE_ROWS else time.monotonic()
        return deleted

    @staticmethod
    def _insert(db: Database, records: Sequence[Decision]) -> None:
        if not records:
            return
        with db.write() as tx:  # a record written again (relayed by two instances, say) is one record
            tx.executemany(f"INSERT INTO decisions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                           f"ON CONFLICT ({_KEY}) DO UPDATE SET service = excluded.service, convention = "
                           "excluded.convention, model = excluded.model, prompt_version = excluded.prompt_version, "
                           "recorded_unix_s = excluded.recorded_unix_s, detail = excluded.detail",
                           [d.row() for d in records])


def _for_trace(db: Database, trace_id: str) -> list[Decision]:
    rows = db.query(f"SELECT {_COLUMNS} FROM decisions WHERE trace_id = ? ORDER BY recorded_unix_s, span_id",
                    (trace_id.lower(),))
    return [Decision(*row) for row in rows]


def read_decisions(database: str | Database, trace_id: str) -> list[Decision]:
    """The records of one trace, read from the store directly (the service may be running or not): a SQLite
    file's path, or a database opened read-only (closed here)."""
    db = sqlite_decisions(database, read_only=True) if isinstance(database, str) else database
    try:
        return _for_trace(db, trace_id)
    finally:
        db.close()

