"""The durable judge queue: sampled LLM spans waiting to be judged, in SQLite (WAL), one row per span and metric.

Contract: `enqueue` commits before it returns, so an Export call acknowledged after it cannot lose its sampled spans;
the same (span, metric, judge version) is taken once whatever the retries (INSERT OR IGNORE). Workers `lease` items
for a while and `complete` them; a lease that runs out (the worker died, or the process was killed) makes the item
available again, so every committed item is judged at least once more or is already done. The queue is bounded:
when full, `when_full` says what gives way, and every item turned away is returned to the caller to be recorded.
Decision records about items are written in the same transaction as the change they describe, into an outbox the
judge_queue stage relays to the decision log: a crash loses neither the change nor its record.
Used from one thread (the event loop): the writes are small WAL appends.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from tracejudge.processor.component.decisions import Decision
from tracejudge.processor.component.errors import ConfigError, StorageError
from tracejudge.processor.component.sqlite import Retention, give_back, open_database, open_read_only, shrink_to

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
)

# The ids a lease takes, from the two covering indexes above (tests check the plan reads no table row).
LEASE_IDS = ("SELECT id FROM items WHERE state = 'queued' AND ready_unix_s <= ? UNION ALL "
             "SELECT id FROM items WHERE state = 'leased' AND lease_until < ? ORDER BY id LIMIT ?")


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

    def forget_documents(self) -> None: ...


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

    def forget_decisions(self, through: int) -> None: ...

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


class JudgeQueueReader:
    """Read-only queries over a judge queue file, for the CLI (report, golden) while its stage may be writing."""

    def __init__(self, path: str | Path) -> None:
        self._path = path
        self._db = open_read_only(path, _MIGRATIONS, "the judge queue")

    def close(self) -> None:
        self._db.close()

    def spend(self, since_day: str) -> dict[str, dict[str, float]]:
        """day -> tier -> USD from the spend ledger, from `since_day` (YYYY-MM-DD, UTC) on."""
        spend: dict[str, dict[str, float]] = {}
        if not self._read("SELECT 1 FROM sqlite_master WHERE name = 'spend'", ()):
            return spend  # a queue from before the ledger
        for day, tier, usd in self._read("SELECT day, tier, usd FROM spend WHERE day >= ? ORDER BY day, tier",
                                         (since_day,)):
            spend.setdefault(day, {})[tier] = usd
        return spend

    def judged_content(self, span_id: str, metric: str, judge_version: str) -> JudgedContent | None:
        """What a judged item was about, or None if it is not (or no longer) in the queue."""
        rows = self._read("SELECT body, context FROM items WHERE span_id = ? AND metric = ? AND judge_version = ? "
                          "AND state = 'done'", (span_id, metric, judge_version))
        if not rows:
            return None
        body, context = json.loads(rows[0][0]), rows[0][1]
        if context is None:  # judged before items kept their context
            context = "\n\n".join(body.get("documents") or ())
        return JudgedContent(str(body.get("question") or body.get("query", "")), str(body.get("response", "")),
                             context)

    def _read(self, sql: str, parameters: tuple[str, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the judge queue {self._path}: {e}") from e


class JudgeQueue:
    def __init__(self, path: str, config: JudgeQueueConfig, judge_version: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._judge_version = judge_version
        self._clock = clock
        self._db = open_database(path, _MIGRATIONS, "the judge queue")
        with self._db:  # reserved by requests a crash left unanswered: their clients send them again
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM items WHERE state = 'reserved'")
            self._db.execute("UPDATE items SET state = 'queued' WHERE state = 'displaced'")

    def close(self) -> None:
        self._db.close()

    def waiting(self) -> int:
        """Items queued or leased: not yet judged, given up on or dropped."""
        (count,) = self._db.execute("SELECT count(*) FROM items WHERE state IN ('queued', 'leased')").fetchone()
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
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE items SET state = 'queued' WHERE state = 'reserved' AND span_id = ? AND "
                                 "metric = ? AND judge_version = ?",
                                 [(i.span_id, i.metric, self._judge_version) for i in items])
            self._db.executemany("UPDATE items SET state = 'dropped', done_unix_s = ? WHERE id = ? AND "
                                 "state = 'displaced'", [(self._clock(), key) for key in displaced])
            self._insert_context(documents, kept, self._clock())
            self._insert_decisions(decisions)

    def pending_decisions(self, limit: int) -> list[tuple[int, Decision]]:
        """The oldest `limit` records not yet relayed to the decision log, with their sequence numbers."""
        rows = self._db.execute("SELECT * FROM decision_outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(row[0], Decision(*row[1:])) for row in rows]

    def forget_decisions(self, through: int) -> None:
        """The records up to sequence number `through` are in the decision log."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM decision_outbox WHERE seq <= ?", (through,))

    def _insert_decisions(self, decisions: Sequence[Decision]) -> None:
        self._db.executemany("INSERT INTO decision_outbox (trace_id, span_id, decision, service, convention, model, "
                             "prompt_version, recorded_unix_s, metric, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [d.row() for d in decisions])

    def cancel(self, items: Sequence[NewItem], displaced: Sequence[int] = ()) -> None:
        """Reserved `items` are deleted (their request was refused) and what they `displaced` is queued again;
        items queued by an earlier request stay."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM items WHERE state = 'reserved' AND span_id = ? AND metric = ? AND "
                                 "judge_version = ?", [(i.span_id, i.metric, self._judge_version) for i in items])
            self._db.executemany("UPDATE items SET state = 'queued' WHERE id = ? AND state = 'displaced'",
                                 [(key,) for key in displaced])

    def _insert(self, items: Sequence[NewItem], documents: Sequence[Document], kept: Sequence[KeptSpan],
                state: str) -> Enqueued:
        if not items and not documents and not kept:
            return Enqueued(0, [])
        now = self._clock()
        turned_away: list[NewItem] = []
        displaced: tuple[int, ...] = ()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            (reserved,) = self._db.execute("SELECT count(*) FROM items WHERE state = 'reserved'").fetchone()
            room = self._config.max_items - self.waiting() - int(reserved)
            accepted = list(items)
            if len(accepted) > room:
                if self._config.when_full == "drop_new":
                    turned_away, accepted = accepted[max(room, 0):], accepted[:max(room, 0)]
                else:
                    displaced, turned_away = self._drop_oldest(len(accepted) - max(room, 0),
                                                               "displaced" if state == "reserved" else "dropped")
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO items (span_id, trace_id, metric, judge_version, body, enqueued_unix_s, "
                "ready_unix_s, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(i.span_id, i.trace_id, i.metric, self._judge_version, json.dumps(i.body), now, i.ready_unix_s,
                  state) for i in accepted])
            inserted = self._db.total_changes - before
            self._insert_context(documents, kept, now)
        return Enqueued(inserted, turned_away, displaced)

    def _insert_context(self, documents: Sequence[Document], kept: Sequence[KeptSpan], now: float) -> None:
        self._db.executemany("INSERT OR IGNORE INTO documents VALUES (?, ?, ?, ?, ?)",
                             [(d.trace_id, d.span_id, d.position, d.start_unix_nano, d.content) for d in documents])
        self._db.executemany("INSERT OR IGNORE INTO kept VALUES (?, ?, ?, ?)",
                             [(k.span_id, k.trace_id, json.dumps(k.body), now) for k in kept])

    def kept(self, trace_ids: Iterable[str]) -> list[KeptSpan]:
        """The kept (unsampled) LLM spans of these traces."""
        ids = sorted(set(trace_ids))
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT span_id, trace_id, body FROM kept WHERE trace_id IN ({marks}) "
                                "ORDER BY kept_unix_s, span_id", ids).fetchall() if ids else []
        return [KeptSpan(span, trace, json.loads(body)) for span, trace, body in rows]

    def traces_with_items(self, trace_ids: Iterable[str]) -> set[str]:
        """Those of these traces with items in the queue (waiting, judged or dropped)."""
        ids = sorted(set(trace_ids))
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT DISTINCT trace_id FROM items WHERE trace_id IN ({marks})", ids) if ids else []
        return {row[0] for row in rows}

    def forget_kept(self, older_than_s: float, max_kept: int, limit: int = 200) -> int:
        """Drop up to `limit` kept spans, oldest first, that are older than `older_than_s` or beyond the newest
        `max_kept`; returns how many. Small steps: it runs on the event loop, and a big delete would stall it."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            (count,) = self._db.execute("SELECT count(*) FROM kept").fetchone()
            before = self._db.total_changes
            self._db.execute("DELETE FROM kept WHERE span_id IN (SELECT span_id FROM kept WHERE kept_unix_s < ? "
                             "ORDER BY kept_unix_s LIMIT ?)", (self._clock() - older_than_s, limit))
            deleted = self._db.total_changes - before
            excess = min(count - deleted - max_kept, limit - deleted)
            if excess > 0:
                self._db.execute("DELETE FROM kept WHERE span_id IN (SELECT span_id FROM kept ORDER BY kept_unix_s "
                                 "LIMIT ?)", (excess,))
            return self._db.total_changes - before

    def documents(self, trace_ids: Iterable[str]) -> dict[str, list[Document]]:
        """The stored documents of these traces, by trace, in start order."""
        ids = sorted(set(trace_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        found: dict[str, list[Document]] = {}
        for row in self._db.execute(f"SELECT trace_id, span_id, position, start_unix_nano, content FROM documents "
                                    f"WHERE trace_id IN ({marks}) ORDER BY start_unix_nano, span_id, position", ids):
            found.setdefault(row[0], []).append(Document(*row))
        return found

    def forget_documents(self) -> None:
        """Drop the documents of traces with nothing left to judge and no kept span."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM documents WHERE trace_id NOT IN "
                             "(SELECT trace_id FROM items WHERE state IN ('queued', 'leased')) "
                             "AND trace_id NOT IN (SELECT trace_id FROM kept)")

    def lease(self, limit: int, lease_s: float) -> list[JudgeItem]:
        """Up to `limit` ready items nobody holds (never leased, or their lease ran out), held for `lease_s`."""
        now = self._clock()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            ids = [key for (key,) in self._db.execute(LEASE_IDS, (now, now, limit))]
            rows = self._db.execute(
                "SELECT id, span_id, trace_id, metric, judge_version, body, attempts FROM items "
                f"WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id", ids).fetchall() if ids else []
            self._db.executemany("UPDATE items SET state = 'leased', lease_until = ?, attempts = attempts + 1 "
                                 "WHERE id = ?", [(now + lease_s, row[0]) for row in rows])
        return [JudgeItem(key, span, trace, metric, version, json.loads(body), attempts + 1)
                for key, span, trace, metric, version, body, attempts in rows]

    def complete(self, keys: Iterable[int], contexts: Mapping[int, str] | None = None,
                 decisions: Sequence[Decision] = ()) -> None:
        """Mark items judged (or given up on), keeping the context each was judged against (`contexts`, by key)
        and the `decisions` recorded about them. Idempotent."""
        now = self._clock()
        contexts = contexts or {}
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE items SET state = 'done', done_unix_s = ?, context = ? WHERE id = ?",
                                 [(now, contexts.get(key), key) for key in keys])
            self._insert_decisions(decisions)

    def release(self, keys: Iterable[int], delay_s: float, decisions: Sequence[Decision] = ()) -> None:
        """Give leased items back, to be leased again after `delay_s` (a retry after a transient failure)."""
        ready = self._clock() + delay_s
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE items SET state = 'queued', ready_unix_s = ? WHERE id = ? AND "
                                 "state = 'leased'", [(ready, key) for key in keys])
            self._insert_decisions(decisions)

    def prune(self, retention: Retention, limit: int = 200) -> int:
        """Delete up to `limit` finished items (judged, given up on, dropped: with their prompts, answers and
        context) older than `retention.max_age`, or the oldest while the file holds more than `retention.max_mib`;
        give the space back. Returns how many; small steps, as it runs on the event loop."""
        cutoff = self._clock() - retention.max_age
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.execute("DELETE FROM items WHERE id IN (SELECT id FROM items WHERE done_unix_s < ? "
                             "ORDER BY done_unix_s LIMIT ?)", (cutoff, limit))
            deleted = self._db.total_changes - before
            deleted += shrink_to(self._db, retention.max_mib, "DELETE FROM items WHERE id IN (SELECT id FROM items "
                                 "WHERE done_unix_s IS NOT NULL ORDER BY done_unix_s LIMIT ?)", limit - deleted)
        give_back(self._db)
        return deleted

    def hold_trace(self, trace_id: str, ready_unix_s: float) -> None:
        """Move the queued items of a trace that is still arriving to `ready_unix_s` (the decision wait)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE items SET ready_unix_s = ? WHERE trace_id = ? AND state = 'queued'",
                             (ready_unix_s, trace_id))

    # -- the spend ledger (limits.SpendLedger) and the verdict cache (cache.VerdictStore) share the database

    def spent_usd(self, tier: str, day: str) -> float:
        row = self._db.execute("SELECT usd FROM spend WHERE day = ? AND tier = ?", (day, tier)).fetchone()
        return float(row[0]) if row else 0.0

    def add_spend(self, tier: str, day: str, usd: float) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (day, tier) DO UPDATE SET "
                             "usd = usd + excluded.usd", (day, tier, usd))

    def cached_verdicts(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(f"SELECT key, verdict FROM verdict_cache WHERE key IN ({marks}) AND "
                                "expires_unix_s > ?", (*keys, self._clock())).fetchall()
        return dict(rows)

    def cache_verdicts(self, entries: dict[str, str], ttl_s: float) -> None:
        now = self._clock()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO verdict_cache VALUES (?, ?, ?)",
                                 [(key, verdict, now + ttl_s) for key, verdict in entries.items()])
            self._db.execute("DELETE FROM verdict_cache WHERE expires_unix_s <= ?", (now,))

    def _drop_oldest(self, count: int, state: str) -> tuple[tuple[int, ...], list[NewItem]]:
        rows = self._db.execute("SELECT id, span_id, trace_id, metric, body FROM items WHERE state = 'queued' "
                                "ORDER BY id LIMIT ?", (count,)).fetchall()
        done = self._clock() if state == "dropped" else None  # a displaced item may be queued again
        self._db.executemany("UPDATE items SET state = ?, done_unix_s = ? WHERE id = ?",
                             [(state, done, row[0]) for row in rows])
        return (tuple(row[0] for row in rows),
                [NewItem(span, trace, metric, json.loads(body)) for _, span, trace, metric, body in rows])
