"""`tracejudge migrate-store --from sqlite:DIRECTORY --to postgresql://...`: moves an existing deployment's shared
state from a `file_storage` directory into PostgreSQL, so that a fleet can take over where one instance left off.

Every store found in the directory is copied into the schema the `postgresql` extension gives it (judge_queue.db →
judge_queue, judge_queue.stats.db → judge_queue_stats, judge_queue.judges.db → judge_queue_judges, decisions.db →
decisions, sampler.db → sampler): the judge queue with its leases, documents, kept spans, verdict cache and spend;
the statistics (evaluations, series checkpoints, alerts, feedback, reviewers' labels); the installed judge
adaptations; the decision records. Each SQLite file is first migrated to this
tracejudge's schema, and each PostgreSQL schema created at the same version, so rows copy column for column.
Exporters' sending queues stay where they are: they belong to one instance. Stop tracejudge first; a destination
that already holds rows is refused, so a copy is never merged into live data.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from tracejudge.judge import adaptation_store, queue
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.errors import StorageError
from tracejudge.processor.component.postgres import PostgresDatabase, schema_name
from tracejudge.processor.component.sqlite import SqliteDatabase
from tracejudge.processor.processors.sampler import versions
from tracejudge.processor.service import decision_log
from tracejudge.stats import store

# a table that tells a store apart → (its migrations, what it is)
KINDS: dict[str, tuple[Sequence[str], str]] = {
    "items": (queue.MIGRATIONS, queue.WHAT),
    "evaluations": (store.MIGRATIONS, store.WHAT),
    "decisions": (decision_log.MIGRATIONS, decision_log.WHAT),
    "prompt_versions": (versions.MIGRATIONS, versions.WHAT),
    "adaptations": (adaptation_store.MIGRATIONS, adaptation_store.WHAT),
}
IDENTITY = {"items": "id", "evaluations": "seq", "decision_outbox": "seq"}  # numbered by the database
BATCH = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="sqlite:DIRECTORY",
                        help="the file_storage directory of the deployment (its `directory:`)")
    parser.add_argument("--to", dest="target", required=True, metavar="postgresql://...",
                        help="the PostgreSQL database the postgresql extension's dsn names")


def run(args: argparse.Namespace) -> int:
    if not args.source.startswith("sqlite:"):
        print(f"tracejudge migrate-store: --from {args.source!r}: give sqlite:DIRECTORY", file=sys.stderr)
        return 2
    if not args.target.startswith(("postgresql://", "postgres://")):
        print(f"tracejudge migrate-store: --to {args.target!r}: give a postgresql:// URI", file=sys.stderr)
        return 2
    directory = Path(args.source.removeprefix("sqlite:"))
    found = sorted((path, kind) for path in directory.glob("*.db") if (kind := _kind(path)))
    if not found:
        print(f"tracejudge migrate-store: no tracejudge store in {directory} (a file_storage directory holds "
              "judge_queue.db, judge_queue.stats.db, decisions.db)", file=sys.stderr)
        return 2
    try:
        for path, kind in found:
            migrations, what = KINDS[kind]
            schema = schema_name(path.name.removesuffix(".db"))
            copied = migrate(SqliteDatabase(path, migrations, what), PostgresDatabase(args.target, schema, migrations,
                                                                                      what))
            print(f"{path.name} -> schema {schema}: " + ", ".join(f"{table} {n}" for table, n in copied.items()))
    except StorageError as e:
        print(f"tracejudge migrate-store: {e}", file=sys.stderr)
        return 1
    return 0


def _kind(path: Path) -> str:
    """Which store a SQLite file is (by its tables), "" for anything else (an exporter's sending queue)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error:
        return ""
    return next((table for table in KINDS if table in tables), "")


def migrate(source: SqliteDatabase, target: Database) -> dict[str, int]:
    """Copies every table of `source` into the empty `target` (both at the same schema version); rows per table."""
    try:
        tables = [name for (name,) in source.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        with target.write() as tx:
            for table in tables:
                if tx.execute(f"SELECT 1 FROM {table} LIMIT 1"):
                    raise StorageError(f"{target.where} already holds {table}: migrate into an empty database")
            copied = {}
            for table in tables:
                cursor = source.connection.execute(f"SELECT * FROM {table}")
                columns = ", ".join(column[0] for column in cursor.description)
                marks = ", ".join("?" * len(cursor.description))
                copied[table] = 0
                while rows := cursor.fetchmany(BATCH):
                    copied[table] += tx.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
                if table in IDENTITY and target.engine == "postgresql":  # numbering goes on after the copied rows
                    column = IDENTITY[table]
                    tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                               f"(SELECT coalesce(max({column}), 0) + 1 FROM {table}), false)")
        return copied
    finally:
        source.close()
        target.close()
