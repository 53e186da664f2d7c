"""One interface over the two engines tracejudge keeps state in: SQLite (a file beside the process, the embedded
default) and PostgreSQL (shared by every process and instance of a fleet). A store writes its SQL once, with `?`
placeholders, in what both engines understand (`INSERT ... ON CONFLICT ... DO NOTHING / DO UPDATE`, no `OR IGNORE`,
no SQLite functions), and its schema as one tuple of migrations that both run (`INTEGER PRIMARY KEY AUTOINCREMENT`,
`INTEGER` and `REAL` become their PostgreSQL equivalents). Where the engines differ — taking rows nobody holds,
serialising writers, a store's size — a store asks the database. Either driver's errors become StorageError.

Contract: `write()` is one transaction that holds what it needs to write from its first statement (SQLite: the
database's write lock; PostgreSQL: row locks as it goes, `serialize` for more); reads outside one see committed
data. Several processes (and instances) may use one store at once; a SQLite Database is used from the thread that
opened it, a PostgreSQL one (a pool of connections) from any.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

Engine = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]


class Transaction(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        """Runs one statement; its rows (a SELECT, or RETURNING), [] otherwise. `changed` says how many it wrote."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Runs one statement per row; returns how many rows they wrote in all."""
        ...

    @property
    def changed(self) -> int:
        """Rows the last `execute` wrote."""
        ...

    def serialize(self, name: str) -> None:
        """From here to the end of the transaction, no other transaction that serialises on `name` runs (e.g. so
        that sequence numbers become visible in the order they were taken)."""
        ...

    def used_bytes(self, table: str) -> int:
        """What `table` (with its indexes) takes, for a size bound."""
        ...


class Database(Protocol):
    @property
    def engine(self) -> Engine: ...

    @property
    def where(self) -> str:
        """For messages: the store and its file, or its schema."""
        ...

    def write(self) -> AbstractContextManager[Transaction]:
        """A write transaction: committed at the end of the block, rolled back if it raises."""
        ...

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        """A read of committed data."""
        ...

    def give_back(self) -> None:
        """Return space freed by deletes to the file system where the engine does not (call outside `write`)."""
        ...

    def try_lock(self, name: str) -> bool:
        """Hold the lock `name` for as long as this database is open and its process lives (False while another
        holds it); asked again, says whether it is still held."""
        ...

    def close(self) -> None: ...


def in_list(values: Sequence[Any]) -> str:
    """`?, ?, ?` for an IN list of `values` (stores keep lists under SQLite's 999 parameters)."""
    return ", ".join("?" * len(values))


def chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def shrink(tx: Transaction, table: str, max_mib: int, delete_oldest: str, limit: int, step: int = 50) -> int:
    """In `tx`: while `table` takes more than `max_mib` (0: no bound), run `delete_oldest` (SQL deleting the oldest
    rows, with their number as its one parameter) in steps of `step` rows, `limit` rows at most. Returns how many
    rows went."""
    deleted = 0
    while max_mib and deleted < limit and tx.used_bytes(table) > max_mib * 1024 * 1024:
        tx.execute(delete_oldest, (min(step, limit - deleted),))
        if not tx.changed:
            break
        deleted += tx.changed
    return deleted
