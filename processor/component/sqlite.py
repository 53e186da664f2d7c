"""The one way tracejudge opens a SQLite store: WAL, `synchronous=NORMAL` (a commit survives the process being
killed; only an OS crash can lose the last ones), migrations numbered by `PRAGMA user_version` and run each in a
transaction of its own, and a refusal to open a database written by a newer tracejudge. Every store is in
incremental auto-vacuum mode, so what retention deletes is given back to the file system in small steps
(`give_back`); a database from before that mode is converted once, by a VACUUM when it is opened.

Each store owns its schema as a tuple of migrations; a migration is one SQL statement or several separated by
`;` at the end of a line. Appending a migration is how a schema changes; editing one that shipped is not."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, StorageError, StoreMissing
from tracejudge.processor.component.file_lock import try_lock

log = logging.getLogger(__name__)

# SQLite's largest integer: OTLP times are uint64, so a time from a client is bounded by it before it is stored.
MAX_INTEGER = 2**63 - 1
INCREMENTAL = 2  # PRAGMA auto_vacuum
GIVE_BACK_PAGES = 256  # per step: 1 MiB of 4 KiB pages


@dataclass(frozen=True)
class Retention:
    """How long a store keeps what it no longer needs, and how big it may grow: past `max_mib` (0: no bound) the
    oldest goes first whatever its age. Pruned in small steps off the request path; space is given back."""

    max_age: Duration = 7 * 86400.0
    max_mib: int = 1024

    def validate(self, path: str) -> None:
        if self.max_age <= 0:
            raise ConfigError(f"{path}.max_age: must be positive")
        if self.max_mib < 0:
            raise ConfigError(f"{path}.max_mib: must not be negative (0: no size bound)")


def used_bytes(db: sqlite3.Connection) -> int:
    """What the database's pages hold, free pages not counted."""
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    return int((pages - free) * page_size)


def give_back(db: sqlite3.Connection, pages: int = GIVE_BACK_PAGES) -> None:
    """Return up to `pages` free pages to the file system (a short write transaction; call it outside one)."""
    db.executescript(f"PRAGMA incremental_vacuum({int(pages)})")  # stepped to the end (execute frees one page)


def open_database(path: str | Path, migrations: Sequence[str], what: str) -> sqlite3.Connection:
    """`path` migrated to the newest schema, in autocommit mode (transactions are explicit). `what` names the
    store in errors ("the judge queue"). StorageError if it cannot be opened or is newer than this code."""
    try:
        db = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise StorageError(f"cannot open {what} {path}: {e}") from e
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        done = _version(db, path, migrations, what)
        _incremental_vacuum(db, path, what)
        for number, migration in enumerate(migrations[done:], start=done + 1):
            with db:
                db.execute("BEGIN IMMEDIATE")
                for statement in migration.split(";\n"):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
    except sqlite3.Error as e:
        db.close()
        raise StorageError(f"cannot open {what} {path}: {e}") from e
    except StorageError:
        db.close()
        raise
    return db


def open_read_only(path: str | Path, migrations: Sequence[str], what: str) -> sqlite3.Connection:
    """`path` for reading while its owner may be writing (the CLI); nothing is created or migrated."""
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise StorageError(f"cannot read {what} {path}: {e}") from e
    try:
        _version(db, path, migrations, what)
    except sqlite3.Error as e:
        db.close()
        raise StorageError(f"cannot read {what} {path}: {e}") from e
    return db


def _incremental_vacuum(db: sqlite3.Connection, path: str | Path, what: str) -> None:
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
        return
    db.execute(f"PRAGMA auto_vacuum = {INCREMENTAL}")  # a new, empty database takes it at once
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL or str(path) == ":memory:":
        return
    log.info("%s %s: converting to incremental vacuum (once)", what, path)
    try:
        db.execute("VACUUM")
    except sqlite3.Error as e:  # e.g. no room for the copy VACUUM makes: retention still deletes, space is reused
        log.warning("%s %s: could not convert to incremental vacuum (%s); freed space is reused but not given "
                    "back to the file system", what, path, e)


def _version(db: sqlite3.Connection, path: str | Path, migrations: Sequence[str], what: str) -> int:
    done = int(db.execute("PRAGMA user_version").fetchone()[0])
    if done > len(migrations):
        db.close()
        raise StorageError(f"{what} {path} was written by a newer tracejudge (schema {done}, this one knows "
                           f"{len(migrations)}); upgrade tracejudge or point it at another file")
    return done


class SqliteDatabase:
    """A store's SQLite file as a `database.Database` (WAL; several processes may write it, each transaction taking
    the write lock at its start). Used from the thread that opened it."""

    engine: Literal["sqlite"] = "sqlite"

    def __init__(self, path: str | Path, migrations: Sequence[str], what: str, read_only: bool = False) -> None:
        self.where = f"{what} {path}"
        self.path = Path(path)
        self._locks: dict[str, TextIO] = {}
        if read_only and str(path) != ":memory:" and not self.path.exists():
            raise StoreMissing(f"{what} {path} does not exist yet (nothing was stored there)")
        self.connection = (open_read_only(path, migrations, what) if read_only else
                           open_database(path, migrations, what))

    @contextlib.contextmanager
    def write(self) -> Iterator[_SqliteTransaction]:
        db = self.connection
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                yield _SqliteTransaction(db)
        except sqlite3.Error as e:
            raise StorageError(f"cannot write {self.where}: {e}") from e

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"cannot read {self.where}: {e}") from e

    def give_back(self) -> None:
        try:
            give_back(self.connection)
        except sqlite3.Error as e:
            raise StorageError(f"cannot write {self.where}: {e}") from e

    def try_lock(self, name: str) -> bool:
        """A lock file beside the database (the kernel releases it when the process dies)."""
        if name in self._locks:
            return True
        lock = try_lock(self.path.with_name(f"{self.path.name}.{name.replace(' ', '-')}.lock"))
        if lock is None:
            return False
        self._locks[name] = lock
        return True

    def close(self) -> None:
        self.connection.close()
        for lock in self._locks.values():
            lock.close()
        self._locks.clear()


class _SqliteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.changed = 0

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        before = self._db.total_changes
        rows = self._db.execute(sql, parameters).fetchall()
        self.changed = self._db.total_changes - before
        return rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        before = self._db.total_changes
        self._db.executemany(sql, rows)
        return self._db.total_changes - before

    def serialize(self, name: str) -> None:
        """Nothing to do: a SQLite transaction holds the database's one write lock from its start."""

    def used_bytes(self, table: str) -> int:
        """The whole file's (a size bound on a store is on its file)."""
        return used_bytes(self._db)
