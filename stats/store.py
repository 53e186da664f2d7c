"""Where the statistics live: evaluations (with inclusion probability, stratum, judge tier and version), series
state, alerts, and user feedback (joined with evaluations on trace id, whichever arrives first).

Contract (`Store`): `save` writes a batch's evaluations and alerts in one transaction and returns the sequence number
of the last stored evaluation; `checkpoint` writes series states with the sequence number they include, also in one
transaction. After a crash the state is the checkpoint plus a replay of the evaluations stored after it
(`tracker.recover`): exactly the state of the committed evaluations, without serialising every series per batch.
`fresh` says which evaluations are not stored yet (the judge queue delivers at least once). Used from one thread.
`SqliteStore` is the embedded default (WAL; survives `kill -9`); a shared PostgreSQL store for several replicas is a
second class with these methods.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

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
)


FIELDS = [f.name for f in dataclasses.fields(Evaluation)]
_INSERT = (f"INSERT INTO evaluations ({', '.join(FIELDS)}, stored_unix_s) VALUES ({', '.join('?' * len(FIELDS))}, "
           "(julianday('now') - 2440587.5) * 86400.0)")


class Store(Protocol):
    def fresh(self, evaluations: Sequence[Evaluation]) -> list[Evaluation]:
        """Those not stored yet (and not repeated within `evaluations`), in order."""
        ...

    def save(self, evaluations: Sequence[Evaluation], alerts: Sequence[Alert]) -> int:
        """One transaction: all of it is stored, or none. Returns the last evaluation's sequence number."""
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

    def evaluations(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[Evaluation]]:
        """The stored evaluations after `after_seq`, in the order they were saved (replay's input)."""
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

    def fresh(self, evaluations: Sequence[Evaluation]) -> list[Evaluation]:
        spans = sorted({e.span_id for e in evaluations})
        stored = set()
        for start in range(0, len(spans), 500):  # SQLite's limit on parameters
            chunk = spans[start:start + 500]
            stored.update(self._db.execute(
                "SELECT span_id, trace_id, metric, judge_version FROM evaluations WHERE span_id IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        out = []
        for e in evaluations:
            identity = (e.span_id, e.trace_id, e.metric, e.judge_version)
            if identity not in stored:
                stored.add(identity)
                out.append(e)
        return out

    def save(self, evaluations: Sequence[Evaluation], alerts: Sequence[Alert]) -> int:
        with self._db.atomic():
            # no OR IGNORE: it would also skip rows breaking NOT NULL; `fresh` has taken the duplicates out. The hot
            # path: a prepared statement, not sqlite-utils' per-value conversion (a third of the cost per evaluation)
            if evaluations:
                self._db.conn.executemany(_INSERT, [e.values() for e in evaluations])
            if alerts:  # an alert raised again keeps its delivered flag
                self._db["alerts"].upsert_all([a.row() for a in alerts], pk="alert_id")  # type: ignore[union-attr]
            return self.last_seq()

    def last_seq(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM evaluations").fetchone()[0])

    def checkpoint(self, states: Mapping[SeriesKey, dict[str, Any]], through_seq: int) -> None:
        with self._db.atomic():
            if states:
                self._db["series"].upsert_all(  # type: ignore[union-attr]
                    [{"key": str(key), "service": key.service, "prompt_version": key.prompt_version,
                      "model": key.model, "metric": key.metric, "state": json.dumps(state, sort_keys=True),
                      "updated_unix_nano": int(state.get("updated_unix_nano", 0))} for key, state in states.items()],
                    pk="key")
            self._db["meta"].upsert({"name": "checkpoint_seq", "value": str(through_seq)},  # type: ignore[union-attr]
                                    pk="name")

    def series_states(self) -> tuple[dict[SeriesKey, dict[str, Any]], int]:
        with self._db.atomic():  # one snapshot of states and sequence number
            states = {SeriesKey(row["service"], row["prompt_version"], row["model"], row["metric"]):
                      json.loads(row["state"]) for row in self._db.query("SELECT * FROM series ORDER BY key")}
            row = self._db.execute("SELECT value FROM meta WHERE name = 'checkpoint_seq'").fetchone()
        return states, int(row[0]) if row else 0

    def evaluations(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[Evaluation]]:
        after = after_seq
        while True:
            rows = self._db.execute(f"SELECT seq, {', '.join(FIELDS)} FROM evaluations WHERE seq > ? ORDER BY seq "
                                    "LIMIT ?", [after, batch]).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [Evaluation.from_values(row[1:]) for row in rows]

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
        with self._db.atomic():
            self._db.conn.executemany("UPDATE alerts SET delivered = 1 WHERE alert_id = ?", [(a,) for a in alert_ids])

    def save_feedback(self, feedback: Sequence[Feedback]) -> list[Feedback]:
        with self._db.atomic():
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
        with self._db.atomic():
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

    def close(self) -> None:
        self._db.close()


def _alert(row: dict[str, Any]) -> Alert:
    key = SeriesKey(row["service"], row["prompt_version"], row["model"], row["metric"])
    return Alert(row["alert_id"], row["time_unix_nano"], key, row["cause"], row["detector"], row["summary"],
                 row["baseline"], row["current"], row["effect"], row["ci_low"], row["ci_high"], row["p_value"],
                 row["n_baseline"], row["n_current"], tuple(tuple(e) for e in json.loads(row["examples"])),
                 json.loads(row["details"]))
