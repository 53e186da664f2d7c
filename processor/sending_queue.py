"""An exporter's sending queue: in memory (the default) or in a SQLite file that survives a crash.

Both are driven from the event loop only: `put` is synchronous, so a fan-out can check every queue and then put
into each without a suspension point in between; the disk queue's writes are small WAL appends on that thread.
Items are taken with `get` and finished with `done` once delivered or given up on. An item that was taken but not
finished (the process stopped mid-delivery) stays in the disk queue and is delivered again after a restart:
delivery is at least once.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class QueuedItem:
    payload: bytes
    span_count: int
    key: int = 0  # the disk queue's row id


class SendingQueue(Protocol):
    durable: bool

    def full(self) -> bool: ...

    def put(self, payload: bytes, span_count: int) -> None: ...

    async def get(self) -> QueuedItem: ...

    def done(self, item: QueuedItem) -> None: ...

    def pending(self) -> int:
        """Items put and not yet done, including those being delivered."""

    def waiting(self) -> list[QueuedItem]:
        """Items not yet taken by `get`."""

    def close(self) -> None: ...


class _Base:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ready: collections.deque[QueuedItem] = collections.deque()
        self._pending = 0
        self._available = asyncio.Event()

    def full(self) -> bool:
        """As in the Collector, capacity counts requests waiting, not those being delivered."""
        return len(self._ready) >= self._capacity

    def pending(self) -> int:
        return self._pending

    def waiting(self) -> list[QueuedItem]:
        return list(self._ready)

    async def get(self) -> QueuedItem:
        while not self._ready:
            self._available.clear()
            await self._available.wait()
        return self._ready.popleft()

    def _add(self, item: QueuedItem) -> None:
        self._ready.append(item)
        self._pending += 1
        self._available.set()


class MemoryQueue(_Base):
    durable = False

    def put(self, payload: bytes, span_count: int) -> None:
        self._add(QueuedItem(payload, span_count))

    def done(self, item: QueuedItem) -> None:
        self._pending -= 1

    def close(self) -> None:
        self._ready.clear()


# Each entry is a migration; the database's user_version says how many have run.
_MIGRATIONS = ("CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, "
               "span_count INTEGER NOT NULL)",)


class DiskQueue(_Base):
    """Rows are inserted before the request is acknowledged and deleted once delivered (or given up on).
    Payloads stay on disk until a worker takes them, so a long backlog costs no memory."""

    durable = True

    def __init__(self, path: str, capacity: int) -> None:
        super().__init__(capacity)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives the process being killed; only an OS crash can lose the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, statement in enumerate(_MIGRATIONS[version:], start=version + 1):
            self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {number}")
        for key, span_count in self._db.execute("SELECT id, span_count FROM queue ORDER BY id"):
            self._add(QueuedItem(b"", span_count, key))

    def put(self, payload: bytes, span_count: int) -> None:
        cursor = self._db.execute("INSERT INTO queue (payload, span_count) VALUES (?, ?)", (payload, span_count))
        self._add(QueuedItem(b"", span_count, cursor.lastrowid or 0))

    async def get(self) -> QueuedItem:
        item = await super().get()
        (payload,) = self._db.execute("SELECT payload FROM queue WHERE id = ?", (item.key,)).fetchone()
        return QueuedItem(payload, item.span_count, item.key)

    def done(self, item: QueuedItem) -> None:
        self._db.execute("DELETE FROM queue WHERE id = ?", (item.key,))
        self._pending -= 1

    def close(self) -> None:
        self._db.close()
