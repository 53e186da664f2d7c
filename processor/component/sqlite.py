"""The one way tracejudge opens a SQLite store: WAL, `synchronous=NORMAL` (a commit survives the process being
killed; only an OS crash can lose the last ones), migrations numbered by `PRAGMA user_version` and run each in a
transaction of its own, and a refusal to open a database written by a newer tracejudge.

Each store owns its schema as a tuple of migrations; a migration is one SQL statement or several separated by
`;` at the end of a line. Appending a migration is how a schema changes; editing one that shipped is not."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from tracejudge.processor.component.errors import StorageError

# SQLite's largest integer: OTLP times are uint64, so a time from a client is bounded by it before it is stored.
MAX_INTEGER = 2**63 - 1


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


def _version(db: sqlite3.Connection, path: str | Path, migrations: Sequence[str], what: str) -> int:
    done = int(db.execute("PRAGMA user_version").fetchone()[0])
    if done > len(migrations):
        db.close()
        raise StorageError(f"{what} {path} was written by a newer tracejudge (schema {done}, this one knows "
                           f"{len(migrations)}); upgrade tracejudge or point it at another file")
    return done
