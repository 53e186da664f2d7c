"""An exporter's sending queue: in memory (the default) or in a SQLite file that survives a crash.

Both are driven from the event loop only: `put` is synchronous, so a fan-out can check every queue and then put
into each without a suspension point in between; the disk queue's writes are small WAL appends on that thread.
Items are taken with `get` and finished with `done` once delivered or given up on. An item that was taken but not
finished (the process stopped mid-delivery) stays in the disk queue and is delivered again after a restart:
delivery is at least once. An item just put can be withdrawn (another exporter of the fan-out refused the request).

Deleting a delivered row needs disk space too: when the disk is full, the disk queue asks its storage to give back
its reserve (`on_full`) and tries again; a row it still cannot delete is not sent again while the process runs and
is deleted at the next chance.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from tracejudge.processor.component.errors import StorageError
from tracejudge.processor.component.sqlite import open_database

log = logging.getLogger(__name__)

Sizer = Literal["requests", "items", "bytes"]


@dataclass(frozen=True, slots=True)
class QueuedItem:
    payload: bytes  # empty in a disk queue until a worker takes the item
    item_count: int
    size_bytes: int
    key: int = 0  # the disk queue's row id

    def size(self, sizer: Sizer) -> int:
        """The item's size in the unit capacity is counted in (the Collector's `sizer`)."""
        return 1 if sizer == "requests" else self.item_count if sizer == "items" else self.size_bytes


class SendingQueue(Protocol):
    durable: bool

    def has_room(self, item_count: int, size_bytes: int) -> bool: ...

    def size(self) -> int:
        """What waits, in the sizer's unit."""

    def put(self, payload: bytes, item_count: int) -> QueuedItem: ...

    def withdraw(self, item: QueuedItem) -> None:
        """Take back an item just put, before any await: no worker has taken it."""

    async def get(self) -> QueuedItem: ...

    def done(self, item: QueuedItem) -> None: ...

    def pending(self) -> int:
        """Items put and not yet done, including those being delivered."""

    def waiting(self) -> list[QueuedItem]:
        """Items not yet taken by `get`."""

    def close(self) -> None: ...


class _Base:
    def __init__(self, capacity: int, sizer: Sizer) -> None:
        self._capacity = capacity
        self._sizer: Sizer = sizer
        self._ready: collections.deque[QueuedItem] = collections.deque()
        self._size = 0
        self._pending = 0
        self._available = asyncio.Event()

    def has_room(self, item_count: int, size_bytes: int) -> bool:
        """As in the Collector, capacity counts what waits, not what is being delivered. An empty queue takes
        even an item larger than its capacity: refusing it would make its sender retry for ever."""
        incoming = QueuedItem(b"", item_count, size_bytes).size(self._sizer)
        return self._size == 0 or self._size + incoming <= self._capacity

    def size(self) -> int:
        return self._size

    def pending(self) -> int:
        return self._pending

    def waiting(self) -> list[QueuedItem]:
        return list(self._ready)

    async def get(self) -> QueuedItem:
        while not self._ready:
            self._available.clear()
            await self._available.wait()
        item = self._ready.popleft()
        self._size -= item.size(self._sizer)
        return item

    def _add(self, item: QueuedItem) -> QueuedItem:
        self._ready.append(item)
        self._size += item.size(self._sizer)
        self._pending += 1
        self._available.set()
        return item

    def _take_back(self, item: QueuedItem) -> None:
        for index in range(len(self._ready) - 1, -1, -1):  # from the newest: it was put just now
            if self._ready[index] is item:
                del self._ready[index]
                self._size -= item.size(self._sizer)
                self._pending -= 1
                return


class MemoryQueue(_Base):
    durable = False

    def put(self, payload: bytes, item_count: int) -> QueuedItem:
        return self._add(QueuedItem(payload, item_count, len(payload)))

    def withdraw(self, item: QueuedItem) -> None:
        self._take_back(item)

    def done(self, item: QueuedItem) -> None:
        self._pending -= 1

    def close(self) -> None:
        self._ready.clear()


# Each entry is a migration; the database's user_version says how many have run.
_MIGRATIONS = ("CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, "
               "span_count INTEGER NOT NULL)",)  # items (spans, log records, data points): named before logs


class DiskQueue(_Base):
    """Rows are inserted before the request is acknowledged and deleted once delivered (or given up on).
    Payloads stay on disk until a worker takes them, so a long backlog costs no memory. `on_full` is called when
    a delete fails for want of space: it frees some (the storage's reserve) and says whether it could."""

    durable = True

    def __init__(self, path: str, capacity: int, sizer: Sizer, on_full: Callable[[], bool] = lambda: False) -> None:
        super().__init__(capacity, sizer)
        self._path = path
        self._on_full = on_full
        self._undeleted: set[int] = set()  # finished rows a full disk kept us from deleting: never sent again
        self._db = open_database(path, _MIGRATIONS, "the sending queue")
        try:
            rows = self._db.execute("SELECT id, span_count, length(payload) FROM queue ORDER BY id").fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the sending queue {path}: {e}") from e
        for key, item_count, size_bytes in rows:
            self._add(QueuedItem(b"", item_count, size_bytes, key))

    def put(self, payload: bytes, item_count: int) -> QueuedItem:
        try:
            cursor = self._db.execute("INSERT INTO queue (payload, span_count) VALUES (?, ?)", (payload, item_count))
        except sqlite3.Error as e:  # a full disk, an I/O error: the client is told to retry
            raise StorageError(f"the sending queue {self._path} cannot be written ({e})") from e
        return self._add(QueuedItem(b"", item_count, len(payload), cursor.lastrowid or 0))

    def withdraw(self, item: QueuedItem) -> None:
        self._take_back(item)
        self._delete(item.key)

    async def get(self) -> QueuedItem:
        item = await super().get()
        (payload,) = self._db.execute("SELECT payload FROM queue WHERE id = ?", (item.key,)).fetchone()
        return QueuedItem(payload, item.item_count, item.size_bytes, item.key)

    def done(self, item: QueuedItem) -> None:
        self._pending -= 1
        self._delete(item.key)

    def _delete(self, key: int) -> None:
        self._undeleted.add(key)
        keys = sorted(self._undeleted)
        for attempt in range(2):
            try:
                self._db.executemany("DELETE FROM queue WHERE id = ?", [(k,) for k in keys])
            except sqlite3.Error as e:
                full = getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                if attempt == 0 and full and self._on_full():
                    continue
                log.warning("sending queue %s: %d delivered request(s) cannot be deleted yet (%s); they are not "
                            "sent again unless the process restarts first", self._path, len(keys), e)
                return
            self._undeleted.clear()
            return

    def close(self) -> None:
        self._db.close()
