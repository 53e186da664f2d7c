"""The durable judge queue: sampled LLM spans waiting to be judged, one row per span and metric, in SQLite (WAL; the
embedded default) or PostgreSQL (shared by a fleet) through `processor.component.database`.

Contract: `enqueue` commits before it returns, so an Export call acknowledged after it cannot lose its sampled spans;
the same (span, metric, judge version) is taken once whatever the retries (a unique key). Workers `lease` items
for a while and `complete` them; a lease that runs out (the worker died, or the process was killed) makes the item
available again, so every committed item is judged at least once more or is already done. The queue is bounded:
when full, `when_full` says what gives way, and every item turned away is returned to the caller to be recorded.
Decision records about items are written in the same transaction as the change they describe, into an outbox the
judge_queue stage relays to the decision log: a crash loses neither the change nor its record.
Any number of processes and instances may use one queue: a lease takes rows nobody holds (PostgreSQL: `FOR UPDATE
SKIP LOCKED`; SQLite: the write lock). Each JudgeQueue object is used from one thread (the event loop).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from tracejudge.processor.component.database import Database, Transaction, chunks, in_list, shrink
from tracejudge.processor.component.decisions import Decision
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.sqlite import Retention, SqliteDatabase

WhenFull = Literal["drop_new", "drop_oldest"]
# A request's reservation older than this was never answered: longer than any client waits for its Export call.
RESERVATION_TTL_S = 600.0

# Each entry is a migration (both engines run them, see database.py); the database records how many have run.
MIGRATIONS = (
    """CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        span_id TEXT NOT NULL, trace_id TEXT NOT NULL, metric TEXT NOT NULL, judge_version TEXT NOT NULL,
        body TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued', lease_until REAL NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0, enqueued_unix_s REAL NOT NULL, done_unix_s REAL,
        UNIQUE (span_id, metric, judge_version))""",
    "CREATE INDEX items_state ON items (state, id)",
    # when an item may be leased: after its trace's decision wait, or a retry's backoff
    "ALTER TABLE items ADD COLUMN ready_unix_s REAL NOT NULL DEFAULT 0",
    "CREATE TABLE spend (day TEXT NOT NULL, tier TEXT NOT NULL, usd REAL NOT NULL, PRIMARY KEY (day, tier))",
    "CREATE TABLE verdict_cache (key TEXT PRIMARY KEY, verdict TEXT NOT NULL, expires_unix_s REAL NOT NULL)",
    "CREATE INDEX verdict_cache_expiry ON verdict_cache (expires_unix_s)",
    # retrieved documents of traces with queued items: the context of their LLM spans
    """CREATE TABLE documents (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, position INTEGER NOT NULL,
        start_unix_nano INTEGER NOT NULL, content TEXT NOT NULL, PRIMARY KEY (trace_id, span_id, position))""",
    # LLM spans not sampled, kept a while so that feedback arriving later can still have them judged
    """CREATE TABLE kept (span_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, body TEXT NOT NULL,
        kept_unix_s REAL NOT NULL)""",
    "CREATE INDEX kept_trace ON kept (trace_id)",
    "CREATE INDEX kept_time ON kept (kept_unix_s)",
    # the context a judged item was judged against (golden datasets are built from judged items)
    "ALTER TABLE items ADD COLUMN context TEXT",
    # feedback asks by trace: has it been queued or judged?
    "CREATE INDEX items_trace ON items (trace_id)",
    # leasing decides from these alone, never reading a row (whose body may be megabytes, before these columns)
    "CREATE INDEX items_ready ON items (state, ready_unix_s, id)",
    "CREATE INDEX items_lease ON items (state, lease_until, id)",
    # decision records about items, written in the transaction that changes them and relayed to the decision log
    """CREATE TABLE decision_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, decision TEXT NOT NULL, service TEXT NOT NULL,
        convention TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL, recorded_unix_s REAL NOT NULL,
        metric TEXT NOT NULL, detail TEXT NOT NULL)""",
    # retention takes judged (and dropped) items oldest first
    "CREATE INDEX items_done ON items (done_unix_s) WHERE done_unix_s IS NOT NULL",
    # a shared queue keeps every trace's documents a while, for LLM spans another instance may receive
    "ALTER TABLE documents ADD COLUMN stored_unix_s REAL NOT NULL DEFAULT 0",
)

# The ids a lease takes, from the two covering indexes above (tests check SQLite's plan reads no table row);
# PostgreSQL locks the rows it takes and skips those another transaction is taking.
LEASE_IDS = {"sqlite": "SELECT id FROM items WHERE state = 'queued' AND ready_unix_s <= ? UNION ALL "
                       "SELECT id FROM items WHERE state = 'leased' AND lease_until < ? ORDER BY id LIMIT ?",
             "postgresql": "SELECT id FROM items WHERE (state = 'queued' AND ready_unix_s <= ?) OR "
                           "(state = 'leased' AND lease_until < ?) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"}
WHAT = "the judge queue"


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
    ready_unix_s: float = 0.0  # not to be leased before (its trace may still be arriving)


@dataclass(frozen=True, slots=True)
class KeptSpan:
    """An LLM span that was not sampled: what a judge would need, should feedback ask for it to be judged."""

    span_id: str
    trace_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Document:
    """A retrieved document of a trace: context for the LLM spans that started after `start_unix_nano`."""

    trace_id: str
    span_id: str  # of the retriever span
    position: int
    start_unix_nano: int
    content: str


@dataclass(frozen=True, slots=True)
class Enqueued:
    inserted: int  # new items (a retried request's items are already there and not counted)
    turned_away: list[NewItem]
    # under drop_oldest, a reservation's turned-away items are only displaced: dropped when it is committed,
    # queued again if it is cancelled (their keys)
    displaced: tuple[int, ...] = ()


class WorkQueue(Protocol):
    """The judge queue as its workers use it: lease ready items, then complete or release them. A lease that is
    neither completed nor released expires (its worker died) and the item is leased again. JudgeQueue implements
    it on SQLite; another engine implements the same."""

    def waiting(self) -> int: ...

    def lease(self, limit: int, lease_s: float) -> list[JudgeItem]: ...

    def complete(self, keys: Iterable[int], contexts: Mapping[int, str] | None = None,
                 decisions: Sequence[Decision] = ()) -> None: ...

    def release(self, keys: Iterable[int], delay_s: float, decisions: Sequence[Decision] = ()) -> None: ...

    def documents(self, trace_ids: Iterable[str]) -> dict[str, list[Document]]: ...

    def forget_documents(self, older_than_s: float = 0.0) -> None: ...


class JudgeQueueStore(WorkQueue, Protocol):
    """Everything the judge_queue processor asks of its queue: what the workers lease, and the intake (items,
    their traces' documents, unsampled spans kept for feedback). JudgeQueue implements it on SQLite (with the spend
    ledger and verdict cache, judge.tiers.JudgeStore, in the same file); another engine implements the same."""

    def enqueue(self, items: Sequence[NewItem], documents: Sequence[Document] = (),
                kept: Sequence[KeptSpan] = ()) -> Enqueued: ...

    def reserve(self, items: Sequence[NewItem]) -> Enqueued: ...

    def commit(self, items: Sequence[NewItem], documents: Sequence[Document] = (),
               kept: Sequence[KeptSpan] = (), decisions: Sequence[Decision] = (),
               displaced: Sequence[int] = ()) -> None: ...

    def pending_decisions(self, limit: int) -> list[tuple[int, Decision]]: ...

    def forget_decisions(self, seqs: Sequence[int]) -> None: ...

    def forget_reservations(self) -> None: ...

    def cancel(self, items: Sequence[NewItem], displaced: Sequence[int] = ()) -> None: ...

    def kept(self, trace_ids: Iterable[str]) -> list[KeptSpan]: ...

    def traces_with_items(self, trace_ids: Iterable[str]) -> set[str]: ...

    def forget_kept(self, older_than_s: float, max_kept: int, limit: int = 200) -> int: ...

    def prune(self, retention: Retention, limit: int = 200) -> int: ...

    def hold_trace(self, trace_id: str, ready_unix_s: float) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class JudgedContent:
    query: str  # the user's question, without the system prompt (older items have only the whole input)
    response: str
    context: str  # what the item was judged against


def opened(database: Database | str | Path, read_only: bool = False) -> Database:
    """A queue's database: given, or the SQLite file at a path."""
    return SqliteDatabase(database, MIGRATIONS, WHAT, read_only) if isinstance(database, str | Path) else database


class JudgeQueueReader:
    """Read-only queries over a judge queue, for the CLI (report, golden) while its stage may be writing."""

    def __init__(self, database: Database | str | Path) -> None:
        self._db = opened(database, read_only=True)

    def close(self) -> None:
        self._db.close()

    def spend(self, since_day: str) -> dict[str, dict[str, float]]:
        """day -> tier -> USD from the spend ledger, from `since_day` (YYYY-MM-DD, UTC) on."""
        spend: dict[str, dict[str, float]] = {}
        for day, tier, usd in self._db.query("SELECT day, tier, usd FROM spend WHERE day >= ? ORDER BY day, tier",
                                             (since_day,)):
            spend.setdefault(day, {})[tier] = usd
        return spend

    def judged_content(self, span_id: str, metric: str, judge_version: str) -> JudgedContent | None:
        """What a judged item was about, or None if it is not (or no longer) in the queue. A span's content is the
        same whatever judged it: the item of `judge_version` if there is one, else that of any other (the version an
        evaluation names is its judging process's, which may differ from the one the item was queued under)."""
        rows = self._db.query("SELECT body, context FROM items WHERE span_id = ? AND metric = ? AND state = 'done' "
                              "ORDER BY CASE WHEN judge_version = ? THEN 0 ELSE 1 END, id LIMIT 1",
                              (span_id, metric, judge_version))
        if not rows:
            return None
        body, context = json.loads(rows[0][0]), rows[0][1]
        if context is None:  # judged before items kept their context
            context = "\n\n".join(body.get("documents") or ())
        return JudgedContent(str(body.get("question") or body.get("query", "")), str(body.get("response", "")),
                             context)


class JudgeQueue:
    def __init__(self, database: Database | str | Path, config: JudgeQueueConfig, judge_version: str,
                 clock: Callable[[], float] = time.time, intake: bool = True) -> None:
        """`intake`: this process takes items in (not a judge worker): reservations a crash left unanswered are
        cleaned up. Only those older than RESERVATION_TTL_S: another process may be answering its own."""
        self._config = config
        self._judge_version = judge_version
        self._clock = clock
        self._db = opened(database)
        if intake:
            self.forget_reservations()

    def close(self) -> None:
        self._db.close()

    def forget_reservations(self) -> None:
        """Delete reservations of requests never answered (a crash; their clients sent them again, and a retry
        commits a reservation it finds), and queue again what they displaced."""
        with self._db.write() as tx:
            tx.execute("DELETE FROM items WHERE state = 'reserved' AND enqueued_unix_s < ?",
                       (self._clock() - RESERVATION_TTL_S,))
            tx.execute("UPDATE items SET state = 'queued' WHERE state = 'displaced' AND NOT EXISTS "
                       "(SELECT 1 FROM items WHERE state = 'reserved')")

    def waiting(self) -> int:
        """Items queued or leased: not yet judged, given up on or dropped."""
        ((count,),) = self._db.query("SELECT count(*) FROM items WHERE state IN ('queued', 'leased')")
        return int(count)

    def enqueue(self, items: Sequence[NewItem], documents: Sequence[Document] = (),
                kept: Sequence[KeptSpan] = ()) -> Enqueued:
        """Commit `items` (already known ones are ignored), the `documents` of their traces and the `kept` spans,
        and say how many items were new and which were turned away because the queue is full: the newest under
        drop_new; under drop_oldest, the oldest waiting ones."""
        return self._insert(items, documents, kept, "queued")

    def reserve(self, items: Sequence[NewItem]) -> Enqueued:
        """Write `items` as reserved, bounded and deduplicated as `enqueue` does; no worker leases them until
        `commit` (their request was accepted) or `cancel` (it was refused). A crash before either deletes them.
        Under drop_oldest the oldest waiting items make room by being displaced (not leased) until then."""
        return self._insert(items, (), (), "reserved")

    def commit(self, items: Sequence[NewItem], documents: Sequence[Document] = (),
               kept: Sequence[KeptSpan] = (), decisions: Sequence[Decision] = (),
               displaced: Sequence[int] = ()) -> None:
        """Reserved `items` become queued, with the `documents` and `kept` spans of their request and the
        `decisions` recorded about them, and the items their reservation `displaced` are dropped; one
        transaction."""
        with self._db.write() as tx:
            tx.executemany("UPDATE items SET state = 'queued' WHERE state = 'reserved' AND span_id = ? AND "
                           "metric = ? AND judge_version = ?",
                           [(i.span_id, i.metric, self._judge_version) for i in items])
            tx.executemany("UPDATE items SET state = 'dropped', done_unix_s = ? WHERE id = ? AND "
                           "state = 'displaced'", [(self._clock(), key) for key in displaced])
            self._insert_context(tx, documents, kept, self._clock())
            self._insert_decisions(tx, decisions)

    def pending_decisions(self, limit: int) -> list[tuple[int, Decision]]:
        """The oldest `limit` records not yet relayed to the decision log, with their sequence numbers."""
        rows = self._db.query("SELECT * FROM decision_outbox ORDER BY seq LIMIT ?", (limit,))
        return [(row[0], Decision(*row[1:])) for row in rows]

    def forget_decisions(self, seqs: Sequence[int]) -> None:
        """These records are in the decision log (by their numbers: one committed late may have a lower one)."""
        with self._db.write() as tx:
            tx.executemany("DELETE FROM decision_outbox WHERE seq = ?", [(seq,) for seq in seqs])

    @staticmethod
    def _insert_decisions(tx: Transaction, decisions: Sequence[Decision]) -> None:
        tx.executemany("INSERT INTO decision_outbox (trace_id, span_id, decision, service, convention, model, "
                       "prompt_version, recorded_unix_s, metric, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [d.row() for d in decisions])

    def cancel(self, items: Sequence[NewItem], displaced: Sequence[int] = ()) -> None:
        """Reserved `items` are deleted (their request was refused) and what they `displaced` is queued again;
        items queued by an earlier request stay."""
        with self._db.write() as tx:
            tx.executemany("DELETE FROM items WHERE state = 'reserved' AND span_id = ? AND metric = ? AND "
                           "judge_version = ?", [(i.span_id, i.metric, self._judge_version) for i in items])
            tx.executemany("UPDATE items SET state = 'queued' WHERE id = ? AND state = 'displaced'",
                           [(key,) for key in displaced])

    def _insert(self, items: Sequence[NewItem], documents: Sequence[Document], kept: Sequence[KeptSpan],
                state: str) -> Enqueued:
        if not items and not documents and not kept:
            return Enqueued(0, [])
        now = self._clock()
        turned_away: list[NewItem] = []
        displaced: tuple[int, ...] = ()
        with self._db.write() as tx:
            ((waiting,),) = tx.execute("SELECT count(*) FROM items WHERE state IN ('queued', 'leased', 'reserved')")
            room = self._config.max_items - int(waiting)
            accepted = list(items)
            if len(accepted) > room:
                if self._config.when_full == "drop_new":
                    turned_away, accepted = accepted[max(room, 0):], accepted[:max(room, 0)]
                else:
                    displaced, turned_away = self._drop_oldest(tx, len(accepted) - max(room, 0),
                                                               "displaced" if state == "reserved" else "dropped")
            inserted = tx.executemany(
                "INSERT INTO items (span_id, trace_id, metric, judge_version, body, enqueued_unix_s, "
                "ready_unix_s, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (span_id, metric, judge_version) DO NOTHING",
                [(i.span_id, i.trace_id, i.metric, self._judge_version, json.dumps(i.body), now, i.ready_unix_s,
                  state) for i in accepted])
            self._insert_context(tx, documents, kept, now)
        return Enqueued(inserted, turned_away, displaced)

    @staticmethod
    def _insert_context(tx: Transaction, documents: Sequence[Document], kept: Sequence[KeptSpan],
                        now: float) -> None:
        tx.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       [(d.trace_id, d.span_id, d.position, d.start_unix_nano, d.content, now) for d in documents])
        tx.executemany("INSERT INTO kept VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       [(k.span_id, k.trace_id, json.dumps(k.body), now) for k in kept])

    def kept(self, trace_ids: Iterable[str]) -> list[KeptSpan]:
        """The kept (unsampled) LLM spans of these traces."""
        rows = [row for ids in chunks(sorted(set(trace_ids))) for row in self._db.query(
            f"SELECT span_id, trace_id, body, kept_unix_s FROM kept WHERE trace_id IN ({in_list(ids)})", ids)]
        rows.sort(key=lambda row: (row[3], row[0]))
        return [KeptSpan(span, trace, json.loads(body)) for span, trace, body, _ in rows]

    def traces_with_items(self, trace_ids: Iterable[str]) -> set[str]:
        """Those of these traces with items in the queue (waiting, judged or dropped)."""
        return {row[0] for ids in chunks(sorted(set(trace_ids))) for row in self._db.query(
            f"SELECT DISTINCT trace_id FROM items WHERE trace_id IN ({in_list(ids)})", ids)}

    def forget_kept(self, older_than_s: float, max_kept: int, limit: int = 200) -> int:
        """Drop up to `limit` kept spans, oldest first, that are older than `older_than_s` or beyond the newest
        `max_kept`; returns how many. Small steps: it runs on the event loop, and a big delete would stall it."""
        with self._db.write() as tx:
            ((count,),) = tx.execute("SELECT count(*) FROM kept")
            tx.execute("DELETE FROM kept WHERE span_id IN (SELECT span_id FROM kept WHERE kept_unix_s < ? "
                       "ORDER BY kept_unix_s LIMIT ?)", (self._clock() - older_than_s, limit))
            deleted = tx.changed
            excess = min(count - deleted - max_kept, limit - deleted)
            if excess > 0:
                tx.execute("DELETE FROM kept WHERE span_id IN (SELECT span_id FROM kept ORDER BY kept_unix_s "
                           "LIMIT ?)", (excess,))
                deleted += tx.changed
            return deleted

    def documents(self, trace_ids: Iterable[str]) -> dict[str, list[Document]]:
        """The stored documents of these traces, by trace, in start order."""
        rows = [row for ids in chunks(sorted(set(trace_ids))) for row in self._db.query(
            "SELECT trace_id, span_id, position, start_unix_nano, content FROM documents "
            f"WHERE trace_id IN ({in_list(ids)})", ids)]
        rows.sort(key=lambda row: (row[3], row[1], row[2]))
        found: dict[str, list[Document]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(Document(*row))
        return found

    def forget_documents(self, older_than_s: float = 0.0) -> None:
        """Drop the documents of traces with nothing left to judge and no kept span, stored more than
        `older_than_s` ago (a shared queue keeps them for LLM spans still on their way to another instance)."""
        with self._db.write() as tx:
            tx.execute("DELETE FROM documents WHERE stored_unix_s <= ? AND trace_id NOT IN "
                       "(SELECT trace_id FROM items WHERE state IN ('queued', 'leased')) "
                       "AND trace_id NOT IN (SELECT trace_id FROM kept)", (self._clock() - older_than_s,))

    def lease(self, limit: int, lease_s: float) -> list[JudgeItem]:
        """Up to `limit` ready items nobody holds (never leased, or their lease ran out), held for `lease_s`."""
        now = self._clock()
        with self._db.write() as tx:
            ids = [key for (key,) in tx.execute(LEASE_IDS[self._db.engine], (now, now, limit))]
            rows = tx.execute(
                "SELECT id, span_id, trace_id, metric, judge_version, body, attempts FROM items "
                f"WHERE id IN ({in_list(ids)}) ORDER BY id", ids) if ids else []
            tx.executemany("UPDATE items SET state = 'leased', lease_until = ?, attempts = attempts + 1 "
                           "WHERE id = ?", [(now + lease_s, row[0]) for row in rows])
        return [JudgeItem(key, span, trace, metric, version, json.loads(body), attempts + 1)
                for key, span, trace, metric, version, body, attempts in rows]

    def complete(self, keys: Iterable[int], contexts: Mapping[int, str] | None = None,
                 decisions: Sequence[Decision] = ()) -> None:
        """Mark items judged (or given up on), keeping the context each was judged against (`contexts`, by key)
        and the `decisions` recorded about them. Idempotent."""
        now = self._clock()
        contexts = contexts or {}
        with self._db.write() as tx:
            tx.executemany("UPDATE items SET state = 'done', done_unix_s = ?, context = ? WHERE id = ?",
                           [(now, contexts.get(key), key) for key in keys])
            self._insert_decisions(tx, decisions)

    def release(self, keys: Iterable[int], delay_s: float, decisions: Sequence[Decision] = ()) -> None:
        """Give leased items back, to be leased again after `delay_s` (a retry after a transient failure)."""
        ready = self._clock() + delay_s
        with self._db.write() as tx:
            tx.executemany("UPDATE items SET state = 'queued', ready_unix_s = ? WHERE id = ? AND "
                           "state = 'leased'", [(ready, key) for key in keys])
            self._insert_decisions(tx, decisions)

    def prune(self, retention: Retention, limit: int = 200) -> int:
        """Delete up to `limit` finished items (judged, given up on, dropped: with their prompts, answers and
        context) older than `retention.max_age`, or the oldest while the store holds more than
        `retention.max_mib`; give the space back. Returns how many; small steps, as it runs on the event loop."""
        cutoff = self._clock() - retention.max_age
        with self._db.write() as tx:
            tx.execute("DELETE FROM items WHERE id IN (SELECT id FROM items WHERE done_unix_s < ? "
                       "ORDER BY done_unix_s LIMIT ?)", (cutoff, limit))
            deleted = tx.changed
            deleted += shrink(tx, "items", retention.max_mib, "DELETE FROM items WHERE id IN (SELECT id FROM items "
                              "WHERE done_unix_s IS NOT NULL ORDER BY done_unix_s LIMIT ?)", limit - deleted)
        self._db.give_back()
        return deleted

    def hold_trace(self, trace_id: str, ready_unix_s: float) -> None:
        """Move the queued items of a trace that is still arriving to `ready_unix_s` (the decision wait)."""
        with self._db.write() as tx:
            tx.execute("UPDATE items SET ready_unix_s = ? WHERE trace_id = ? AND state = 'queued'",
                       (ready_unix_s, trace_id))

    # -- the spend ledger (limits.SpendLedger) and the verdict cache (cache.VerdictStore) share the database

    def spent_usd(self, tier: str, day: str) -> float:
        rows = self._db.query("SELECT usd FROM spend WHERE day = ? AND tier = ?", (day, tier))
        return float(rows[0][0]) if rows else 0.0

    def add_spend(self, tier: str, day: str, usd: float) -> None:
        """One row per tier and day for every process and instance: each adds to it."""
        with self._db.write() as tx:
            tx.execute("INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (day, tier) DO UPDATE SET "
                       "usd = spend.usd + excluded.usd", (day, tier, usd))

    def cached_verdicts(self, keys: Sequence[str]) -> dict[str, str]:
        return {key: verdict for part in chunks(list(keys)) for key, verdict in self._db.query(
            f"SELECT key, verdict FROM verdict_cache WHERE key IN ({in_list(part)}) AND expires_unix_s > ?",
            (*part, self._clock()))}

    def cache_verdicts(self, entries: dict[str, str], ttl_s: float) -> None:
        now = self._clock()
        with self._db.write() as tx:
            tx.executemany("INSERT INTO verdict_cache VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                           "verdict = excluded.verdict, expires_unix_s = excluded.expires_unix_s",
                           [(key, verdict, now + ttl_s) for key, verdict in sorted(entries.items())])
            tx.execute("DELETE FROM verdict_cache WHERE expires_unix_s <= ?", (now,))

    def _drop_oldest(self, tx: Transaction, count: int, state: str) -> tuple[tuple[int, ...], list[NewItem]]:
        rows = tx.execute("SELECT id, span_id, trace_id, metric, body FROM items WHERE state = 'queued' "
                          "ORDER BY id LIMIT ?", (count,))
        done = self._clock() if state == "dropped" else None  # a displaced item may be queued again
        tx.executemany("UPDATE items SET state = ?, done_unix_s = ? WHERE id = ?",
                       [(state, done, row[0]) for row in rows])
        return (tuple(row[0] for row in rows),
                [NewItem(span, trace, metric, json.loads(body)) for _, span, trace, metric, body in rows])
