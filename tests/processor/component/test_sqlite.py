"""Every store opens through one helper: WAL, numbered migrations, and a database from a newer tracejudge refused
with what to do."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig
from tracejudge.processor.component.errors import StorageError
from tracejudge.processor.component.sqlite import INCREMENTAL, give_back, open_database, open_read_only
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.exporters.helper.sending_queue import DiskQueue
from tracejudge.processor.service import decision_log
from tracejudge.processor.service.decision_log import DecisionLog, read_decisions
from tracejudge.stats.store import StatsStore

MIGRATIONS = ("CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y TEXT);\nINSERT INTO b VALUES ('two statements')")


def test_migrations_run_once_each_in_order_and_the_journal_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = open_database(path, MIGRATIONS[:1], "the test store")
    db.execute("INSERT INTO a VALUES (1)")
    db.close()
    db = open_database(path, MIGRATIONS, "the test store")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT x FROM a").fetchall() == [(1,)]
    assert db.execute("SELECT y FROM b").fetchall() == [("two statements",)]
    db.close()
    reader = open_read_only(path, MIGRATIONS, "the test store")
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("INSERT INTO a VALUES (2)")
    reader.close()


def test_a_failing_migration_leaves_the_database_at_the_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(StorageError, match="cannot open the test store"):
        open_database(path, (*MIGRATIONS, "CREATE TABLE a (x INTEGER)"), "the test store")
    db = open_database(path, MIGRATIONS, "the test store")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


async def _decision_log(path: Path) -> None:
    log = DecisionLog(str(path), Telemetry())
    try:
        await log.start()
    finally:
        await log.shutdown()


OPENERS: dict[str, Callable[[Path], Any]] = {
    "judge queue": lambda path: JudgeQueue(str(path), JudgeQueueConfig(), "1").close(),
    "sending queue": lambda path: DiskQueue(str(path), 10, "requests"),
    "statistics store": lambda path: StatsStore(path).close(),
    "decision log": lambda path: open_database(path, decision_log.MIGRATIONS, "the decision log").close(),
}


def _make_newer(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()


@pytest.mark.parametrize("store", sorted(OPENERS))
def test_every_store_refuses_a_database_from_a_newer_tracejudge(tmp_path: Path, store: str) -> None:
    path = tmp_path / "store.db"
    OPENERS[store](path)
    _make_newer(path)
    with pytest.raises(StorageError, match=r"newer tracejudge .* upgrade tracejudge or point it at another file"):
        OPENERS[store](path)


def test_explain_refuses_a_newer_decision_log(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    OPENERS["decision log"](path)
    _make_newer(path)
    with pytest.raises(StorageError, match="newer tracejudge"):
        read_decisions(str(path), "ab" * 16)


async def test_the_decision_log_refuses_a_newer_database_when_the_service_starts(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    OPENERS["decision log"](path)
    _make_newer(path)
    log = DecisionLog(str(path), Telemetry())
    with pytest.raises(StorageError, match="newer tracejudge"):
        await log.start()
    await log.shutdown()


def test_every_store_gives_deleted_space_back_including_one_from_before_incremental_vacuum(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript("CREATE TABLE a (x INTEGER); PRAGMA user_version = 1;")
    old.close()
    for name in ("new.db", "old.db"):
        db = open_database(tmp_path / name, MIGRATIONS, "the test store")
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (INCREMENTAL,)
        db.executemany("INSERT INTO b VALUES (?)", [("x" * 4000,) for _ in range(500)])
        full = os.path.getsize(tmp_path / name)
        db.execute("DELETE FROM b")
        give_back(db, pages=10_000)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert os.path.getsize(tmp_path / name) < full / 10
        db.close()
