"""Where the statistics live: evaluations (with inclusion probability, stratum, judge tier and version), series
state, alerts, and user feedback (joined with evaluations on trace id, whichever arrives first).

Contract (`Store`): judge workers, in any process, `add` evaluations (each once: the judge queue delivers at least
once); one owner reads them back in sequence order (`evaluations(after_seq)`), observes them and `save_alerts`; it
`checkpoint`s series states with the sequence number they include. After a crash the state is the checkpoint plus a
replay of the evaluations stored after it (`tracker.QualityTracker`): exactly the state of the committed
evaluations, without serialising every series per batch. The sequence is the order evaluations became visible, so
the owner never skips one committed late. Each store object is used from one thread.
`SqliteStore` is the embedded default (WAL; survives `kill -9`; several processes may add).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

import sqlite_utils

from tracejudge.processor.component.sqlite import MAX_INTEGER, give_back, open_database
from tracejudge.processor.pdata.feedback import Feedback

from .records import Alert, Evaluation, SeriesKey

_EVALUATION_COLUMNS = """
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, time_unix_nano INTEGER NOT NULL,
    service TEXT NOT NULL, prompt_version TEXT NOT NULL, model TEXT NOT NULL, response_model TEXT NOT NULL,
    fingerprint TEXT NOT NULL, metric TEXT NOT NULL, score REAL NOT NULL, passed INTEGER NOT NULL,
    probability REAL NOT NULL, stratum TEXT NOT NULL, in_uniform INTEGER NOT NULL,
    tier TEXT NOT NULL, judge_model TEXT NOT NULL, judge_version TEXT NOT NULL,
    latency_s REAL NOT NULL, tokens INTEGER NOT NULL, refused INTEGER NOT NULL,
    query_words INTEGER NOT NULL, query_projection TEXT NOT NULL"""

# Each entry is a migration; the database's user_version says how many have run.
_MIGRATIONS = (
    f"""CREATE TABLE evaluations (seq INTEGER PRIMARY KEY AUTOINCREMENT, {_EVALUATION_COLUMNS},
        UNIQUE (span_id, trace_id, metric, judge_version))""",
    "CREATE INDEX evaluations_trace ON evaluations (trace_id)",
    """CREATE TABLE series (key TEXT PRIMARY KEY, service TEXT NOT NULL, prompt_version TEXT NOT NULL,
        model TEXT NOT NULL, metric TEXT NOT NULL, state TEXT NOT NULL, updated_unix_nano INTEGER NOT NULL)""",
    """CREATE TABLE alerts (alert_id TEXT PRIMARY KEY, time_unix_nano INTEGER NOT NULL, series TEXT NOT NULL,
        service TEXT NOT NULL, prompt_version TEXT NOT NULL, model TEXT NOT NULL, metric TEXT NOT NULL,
        cause TEXT NOT NULL, detector TEXT NOT NULL, summary TEXT NOT NULL, baseline TEXT NOT NULL,
        current TEXT NOT NULL, effect REAL, ci_low REAL, ci_high REAL, p_value REAL,
        n_baseline INTEGER NOT NULL, n_current INTEGER NOT NULL, examples TEXT NOT NULL, details TEXT NOT NULL,
        delivered INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX alerts_time ON alerts (time_unix_nano)",
    "CREATE INDEX alerts_undelivered ON alerts (delivered, time_unix_nano)",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE feedback (feedback_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
        time_unix_nano INTEGER NOT NULL, thumbs INTEGER NOT NULL, rating REAL, regenerated INTEGER NOT NULL,
        edited_text TEXT NOT NULL, comment TEXT NOT NULL, source TEXT NOT NULL, labels TEXT NOT NULL,
        negative INTEGER NOT NULL)""",
    "CREATE INDEX feedback_trace ON feedback (trace_id)",
    "CREATE INDEX feedback_negative ON feedback (negative, time_unix_nano)",
    # retention: when an evaluation was stored (older rows: 0, the oldest), and feedback by its time
    "ALTER TABLE evaluations ADD COLUMN stored_unix_s REAL NOT NULL DEFAULT 0",
    "CREATE INDEX feedback_time ON feedback (time_unix_nano)",
    # the Phoenix project each service's judged spans were last filed in: alerts on the service go there too
    "CREATE TABLE projects (service TEXT PRIMARY KEY, project TEXT NOT NULL)",
)


FIELDS = [f.name for f in dataclasses.fields(Evaluation)]
# ON CONFLICT, not OR IGNORE: that would also skip rows breaking NOT NULL
_INSERT = (f"INSERT INTO evaluations ({', '.join(FIELDS)}, stored_unix_s) VALUES ({', '.join('?' * len(FIELDS))}, "
           "(julianday('now') - 2440587.5) * 86400.0) "
           "ON CONFLICT (span_id, trace_id, metric, judge_version) DO NOTHING")
_ALERT_COLUMNS = ("alert_id", "time_unix_nano", "series", "service", "prompt_version", "model", "metric", "cause",
                  "detector", "summary", "baseline", "current", "effect", "ci_low", "ci_high", "p_value",
                  "n_baseline", "n_current", "examples", "details")


class Store(Protocol):
    def add(self, evaluations: Sequence[Evaluation], projects: Mapping[str, str] | None = None) -> int:
        """Stores, in one transaction, the evaluations not stored yet (a span, metric and judge version once) and
        the Phoenix project of services (service → project); returns how many evaluations were new."""
        ...

    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        """Stores alerts not stored yet (by id: an alert raised again keeps its delivered flag); one transaction."""
        ...

    def projects(self) -> dict[str, str]:
        """The Phoenix project each service's judged spans were last filed in."""
        ...

    def try_own(self) -> bool:
        """Become the one owner of the statistics (who observes evaluations, stores alerts and checkpoints) for as
        long as this store object is open, or as the process lives; False while another holds it."""
        ...

    def last_seq(self) -> int:
        """The sequence number of the last stored evaluation (0: none)."""
        ...

    def checkpoint(self, states: Mapping[SeriesKey, dict[str, Any]], through_seq: int) -> None:
        """Series states that include every evaluation up to `through_seq`; one transaction."""
        ...

    def series_states(self) -> tuple[dict[SeriesKey, dict[str, Any]], int]:
        """The checkpointed states and the sequence number they include."""
        ...

    def evaluations_after(self, after_seq: int, limit: int) -> tuple[int, list[Evaluation]]:
        """Up to `limit` stored evaluations after `after_seq` in sequence order, and the last one's number."""
        ...

    def evaluations(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[Evaluation]]:
        """The stored evaluations after `after_seq`, in sequence order (replay's input)."""
        ...

    def alerts(self, trace_id: str = "") -> list[Alert]:
        """All alerts in time order, or those linking to `trace_id`."""
        ...

    def undelivered(self) -> list[Alert]:
        """Alerts not yet handed to the exporters, oldest first."""
        ...

    def mark_delivered(self, alert_ids: Sequence[str]) -> None: ...

    def save_feedback(self, feedback: Sequence[Feedback]) -> list[Feedback]:
        """Stores feedback (each with a feedback_id) in one transaction; returns those not stored before."""
        ...

    def feedback(self, trace_id: str = "", negative_since_unix_nano: int | None = None) -> list[Feedback]:
        """Feedback on `trace_id` (all traces if ""), oldest first; only negative feedback given since the time,
        if one is given."""
        ...

    def trace_evaluations(self, trace_id: str) -> list[Evaluation]:
        """The stored evaluations of one trace, in the order they were saved."""
        ...

    def judged_traces(self) -> Iterator[tuple[str, str, str, float]]:
        """Per metric, judge version and trace: (metric, judge_version, trace_id, the trace's lowest score).
        Calibration's input."""
        ...

    def prune(self, older_than_unix_s: float, limit: int = 200) -> int:
        """Delete up to `limit` evaluations stored before `older_than_unix_s` that a checkpoint of the series
        already holds (so the series lose nothing), feedback given before it and delivered alerts raised before it;
        returns how many rows went."""
        ...

    def close(self) -> None: ...


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite_utils.Database(open_database(path, _MIGRATIONS, "the statistics store"))
        self._owner: TextIO | None = None

    def add(self, evaluations: Sequence[Evaluation], projects: Mapping[str, str] | None = None) -> int:
        conn = self._db.conn
        with self._writing():  # the hot path: a prepared statement, not sqlite-utils' per-value conversion
            before = conn.total_changes
            conn.executemany(_INSERT, [e.values() for e in evaluations])
            added = conn.total_changes - before
            if projects:
                conn.executemany("INSERT INTO projects (service, project) VALUES (?, ?) ON CONFLICT (service) "
                                 "DO UPDATE SET project = excluded.project", sorted(projects.items()))
        return added

    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        with self._writing():
            self._db.conn.executemany(
                f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(_ALERT_COLUMNS))}) "
                "ON CONFLICT (alert_id) DO NOTHING", [[a.row()[c] for c in _ALERT_COLUMNS] for a in alerts])

    def try_own(self) -> bool:
        if self._owner is None:  # a lock file beside the database: the kernel releases it when the process dies
            lock = self.path.with_name(self.path.name + ".owner").open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                return False
            self._owner = lock
        return True

    def projects(self) -> dict[str, str]:
        return {str(s): str(p) for s, p in self._db.execute("SELECT service, project FROM projects")}

    def last_seq(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM evaluations").fetchone()[0])

    def checkpoint(self, states: Mapping[SeriesKey, dict[str, Any]], through_seq: int) -> None:
        with self._writing():
            if states:
                self._db["series"].upsert_all(  # type: ignore[union-attr]
                    [{"key": str(key), "service": key.service, "prompt_version": key.prompt_version,
                      "model": key.model, "metric": key.metric, "state": json.dumps(state, sort_keys=True),
                      "updated_unix_nano": int(state.get("updated_unix_nano", 0))} for key, state in states.items()],
                    pk="key")
            self._db["meta"].upsert({"name": "checkpoint_seq", "value": str(through_seq)},  # type: ignore[union-attr]
                                    pk="name")

    def series_states(self) -> tuple[dict[SeriesKey, dict[str, Any]], int]:
        with self._db.atomic():  # one snapshot of states and sequence number (a read)
            states = {SeriesKey(row["service"], row["prompt_version"], row["model"], row["metric"]):
                      json.loads(row["state"]) for row in self._db.query("SELECT * FROM series ORDER BY key")}
            row = self._db.execute("SELECT value FROM meta WHERE name = 'checkpoint_seq'").fetchone()
        return states, int(row[0]) if row else 0

    def evaluations_after(self, after_seq: int, limit: int) -> tuple[int, list[Evaluation]]:
        # a writer holds SQLite's one write lock from its first insert to its commit: sequence numbers become
        # visible in order, and none can appear later below one already read
        rows = self._db.execute(f"SELECT seq, {', '.join(FIELDS)} FROM evaluations WHERE seq > ? ORDER BY seq "
                                "LIMIT ?", [after_seq, limit]).fetchall()
        return (rows[-1][0] if rows else after_seq), [Evaluation.from_values(row[1:]) for row in rows]

    def evaluations(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[Evaluation]]:
        while True:
            after_seq, found = self.evaluations_after(after_seq, batch)
            if not found:
                return
            yield found

    def alerts(self, trace_id: str = "") -> list[Alert]:
        if trace_id:  # the JSON examples hold the trace id as text: let SQLite pick the candidates
            rows = self._db.query("SELECT * FROM alerts WHERE examples LIKE ? ORDER BY time_unix_nano, alert_id",
                                  [f'%"{trace_id}"%'])
        else:
            rows = self._db.query("SELECT * FROM alerts ORDER BY time_unix_nano, alert_id")
        found = [_alert(row) for row in rows]
        return [a for a in found if not trace_id or any(t == trace_id for t, _ in a.examples)]

    def undelivered(self) -> list[Alert]:
        return [_alert(row) for row in self._db.query(
            "SELECT * FROM alerts WHERE delivered = 0 ORDER BY time_unix_nano, alert_id LIMIT 1000")]

    def mark_delivered(self, alert_ids: Sequence[str]) -> None:
        with self._writing():
            self._db.conn.executemany("UPDATE alerts SET delivered = 1 WHERE alert_id = ?", [(a,) for a in alert_ids])

    def save_feedback(self, feedback: Sequence[Feedback]) -> list[Feedback]:
        with self._writing():
            new = []
            for record in feedback:  # one statement each: INSERT OR IGNORE says which were new
                before = self._db.conn.total_changes
                row = record.row()
                self._db.conn.execute(f"INSERT OR IGNORE INTO feedback ({', '.join(row)}) VALUES "
                                      f"({', '.join('?' * len(row))})", list(row.values()))
                if self._db.conn.total_changes > before:
                    new.append(record)
        return new

    def feedback(self, trace_id: str = "", negative_since_unix_nano: int | None = None) -> list[Feedback]:
        where: list[str] = []
        params: list[str | int] = []
        if trace_id:
            where.append("trace_id = ?")
            params.append(trace_id)
        if negative_since_unix_nano is not None:
            where.append("negative = 1 AND time_unix_nano >= ?")
            params.append(negative_since_unix_nano)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return [Feedback.from_row(row) for row in self._db.query(
            f"SELECT * FROM feedback {clause} ORDER BY time_unix_nano, feedback_id", params)]

    def trace_evaluations(self, trace_id: str) -> list[Evaluation]:
        rows = self._db.execute(f"SELECT {', '.join(FIELDS)} FROM evaluations WHERE trace_id = ? ORDER BY seq",
                                [trace_id]).fetchall()
        return [Evaluation.from_values(row) for row in rows]

    def judged_traces(self) -> Iterator[tuple[str, str, str, float]]:
        for metric, version, trace, score in self._db.execute(
                "SELECT metric, judge_version, trace_id, min(score) FROM evaluations "
                "GROUP BY metric, judge_version, trace_id ORDER BY metric, judge_version, trace_id"):
            yield str(metric), str(version), str(trace), float(score)

    def prune(self, older_than_unix_s: float, limit: int = 200) -> int:
        nanos = int(min(older_than_unix_s * 1e9, MAX_INTEGER))
        conn = self._db.conn
        with self._writing():
            row = conn.execute("SELECT value FROM meta WHERE name = 'checkpoint_seq'").fetchone()
            checkpointed = int(row[0]) if row else 0
            before = conn.total_changes
            # stored times grow with seq: the oldest are a prefix of the checkpointed rows
            conn.execute("DELETE FROM evaluations WHERE seq IN (SELECT seq FROM evaluations WHERE seq <= ? "
                         "ORDER BY seq LIMIT ?) AND stored_unix_s < ?", (checkpointed, limit, older_than_unix_s))
            conn.execute("DELETE FROM feedback WHERE feedback_id IN (SELECT feedback_id FROM feedback WHERE "
                         "time_unix_nano < ? ORDER BY time_unix_nano LIMIT ?)", (nanos, limit))
            conn.execute("DELETE FROM alerts WHERE alert_id IN (SELECT alert_id FROM alerts WHERE time_unix_nano < ? "
                         "AND delivered = 1 ORDER BY time_unix_nano LIMIT ?)", (nanos, limit))
            deleted = conn.total_changes - before
        give_back(conn)
        return deleted

    def count(self, table: str) -> int:
        return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction that takes SQLite's write lock at once: several processes write this file, and a
        transaction that read first could not then write once another had committed."""
        with self._db.conn:
            self._db.conn.execute("BEGIN IMMEDIATE")
            yield

    def close(self) -> None:
        self._db.close()
        if self._owner is not None:
            self._owner.close()
            self._owner = None


def _alert(row: dict[str, Any]) -> Alert:
    key = SeriesKey(row["service"], row["prompt_version"], row["model"], row["metric"])
    return Alert(row["alert_id"], row["time_unix_nano"], key, row["cause"], row["detector"], row["summary"],
                 row["baseline"], row["current"], row["effect"], row["ci_low"], row["ci_high"], row["p_value"],
                 row["n_baseline"], row["n_current"], tuple(tuple(e) for e in json.loads(row["examples"])),
                 json.loads(row["details"]))
