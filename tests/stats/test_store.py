"""The store behind the tracker, on both engines (the `open_database` fixture) where nothing is SQLite's own:
evaluations stored once, one transaction per batch, state checkpointed and recovered exactly (also after kill -9),
and replay that gives the same alerts byte for byte."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.stats.test_monitor import stream
from tests.support.postgres import OpenDatabase
from tracejudge.processor.component.errors import StorageError
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.monitor import QualityMonitor
from tracejudge.stats.replay import recover, replay
from tracejudge.stats.store import MIGRATIONS, WHAT, StatsStore
from tracejudge.stats.tracker import QualityTracker

CONFIG = StatsConfig(cooldown=0)
CHANGE = stream(300) + stream(200, start=300, good=0.6, fingerprint="fp_b", seed=1)


def states(monitor: QualityMonitor) -> dict[Any, Any]:
    return {key: json.loads(json.dumps(series.state())) for key, series in monitor.series.items()}


def test_evaluations_are_stored_once_and_the_state_comes_back(open_database: OpenDatabase) -> None:
    tracker = QualityTracker(StatsStore(open_database(MIGRATIONS, "stats", WHAT)), CONFIG, checkpoint_every=100)
    alerts = []
    for start in range(0, 500, 16):
        alerts += tracker.record(CHANGE[start:start + 16])
    assert tracker.record(CHANGE[:40]) == []  # redelivered: nothing new
    store = tracker.store
    assert isinstance(store, StatsStore) and store.count("evaluations") == 500 and alerts
    assert [a.to_json() for a in store.alerts()] == [a.to_json() for a in alerts]
    linked = alerts[0].examples[0][0]
    assert alerts[0] in store.alerts(trace_id=linked)
    expected = states(tracker.monitor)
    tracker.close()
    reopened = QualityTracker(StatsStore(open_database(MIGRATIONS, "stats", WHAT)), CONFIG)
    assert states(reopened.monitor) == expected
    assert [e for batch in reopened.store.evaluations(batch=64) for e in batch] == CHANGE
    reopened.close()


def test_without_a_final_checkpoint_the_state_is_recovered_from_the_evaluations(open_database: OpenDatabase) -> None:
    tracker = QualityTracker(StatsStore(open_database(MIGRATIONS, "stats", WHAT)), CONFIG, checkpoint_every=128)
    for start in range(0, 500, 16):
        tracker.record(CHANGE[start:start + 16])
    expected = states(tracker.monitor)
    tracker.store.close()  # as if killed: the last 116 evaluations are after the checkpoint
    store = StatsStore(open_database(MIGRATIONS, "stats", WHAT))
    assert store.series_states()[1] == 384
    monitor, seq = recover(store, CONFIG)
    assert states(monitor) == expected and seq == 500
    store.close()


def test_replay_gives_the_same_alerts_byte_for_byte(open_database: OpenDatabase) -> None:
    tracker = QualityTracker(StatsStore(open_database(MIGRATIONS, "stats", WHAT)), CONFIG)
    alerts = tracker.record(stream(300) + stream(300, start=300, good=0.6, prompt="v2", seed=1))
    first = [a.to_json() for a in replay(tracker.store, CONFIG)]
    assert first == [a.to_json() for a in alerts] == [a.to_json() for a in replay(tracker.store, CONFIG)]
    tracker.close()


def test_a_failed_save_leaves_nothing_half_written_and_the_state_unchanged(open_database: OpenDatabase) -> None:
    tracker = QualityTracker(StatsStore(open_database(MIGRATIONS, "stats", WHAT)), CONFIG)
    tracker.record(CHANGE[:20])
    before = states(tracker.monitor)
    broken = [*CHANGE[20:30], dataclasses.replace(CHANGE[30], metric=None)]  # type: ignore[arg-type]
    with pytest.raises(StorageError, match=r"(?i)not[ -]null"):
        tracker.record(broken)
    assert isinstance(tracker.store, StatsStore) and tracker.store.count("evaluations") == 20
    assert states(tracker.monitor) == before
    tracker.close()


def test_a_newer_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    StatsStore(tmp_path / "stats.db").close()
    db = sqlite3.connect(tmp_path / "stats.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StorageError, match="newer tracejudge"):
        StatsStore(tmp_path / "stats.db")


WRITER = """
import sys
from pathlib import Path
from tests.stats.test_monitor import stream
from tests.support.postgres import OpenDatabase
from tests.stats.test_store import CONFIG
from tracejudge.stats.store import MIGRATIONS, WHAT, StatsStore
from tracejudge.stats.tracker import QualityTracker
tracker = QualityTracker(StatsStore(Path(sys.argv[1])), CONFIG, checkpoint_every=100)
evaluations = stream(100_000)
for start in range(0, len(evaluations), 8):
    tracker.record(evaluations[start:start + 8])
    if start == 800:
        print("writing", flush=True)
"""


def test_committed_evaluations_and_their_state_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "stats.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    time.sleep(0.3)  # let it write more: the kill must land mid-stream, not at a chosen point
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    store = StatsStore(path)
    stored = [e for batch in store.evaluations() for e in batch]
    assert len(stored) > 800 and stored == stream(len(stored))
    recovered, _ = recover(store, CONFIG)
    fresh = QualityMonitor(CONFIG)
    fresh.observe(stored)
    assert states(recovered) == states(fresh)
    store.close()


def test_retention_keeps_what_no_checkpoint_holds_and_the_series_lose_nothing(open_database: OpenDatabase) -> None:
    tracker = QualityTracker(StatsStore(open_database(MIGRATIONS, "stats", WHAT)), CONFIG, checkpoint_every=128)
    for start in range(0, 500, 16):
        tracker.record(CHANGE[start:start + 16])
    expected = states(tracker.monitor)
    store = tracker.store
    assert isinstance(store, StatsStore)
    future = time.time() + 1  # everything stored is older than this
    day_ago, later = int(future * 1e9) - 10**9 * 86400, int(future * 1e9) + 10**9
    store.save_feedback([Feedback("ab" * 16, time_unix_nano=day_ago, comment="old").identified(),
                         Feedback("ab" * 16, time_unix_nano=later, comment="new").identified()])
    alerts = store.alerts()
    # the checkpointed evaluations and the old feedback; alerts not yet sent stay
    assert alerts and store.prune(future, limit=1000) == 384 + 1
    assert [f.comment for f in store.feedback()] == ["new"]
    assert store.count("evaluations") == 116  # after the checkpoint: needed to recover the state
    store.mark_delivered([a.alert_id for a in alerts])
    assert store.prune(future, limit=1000) == len(alerts)
    store.close()
    reopened = QualityTracker(StatsStore(open_database(MIGRATIONS, "stats", WHAT)), CONFIG)
    assert states(reopened.monitor) == expected
    reopened.close()
