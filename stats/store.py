"""Where the statistics live: evaluations (with inclusion probability, stratum, judge tier and version), series
state, alerts, and user feedback (joined with evaluations on trace id, whichever arrives first).

Contract (`Store`): judge workers, in any process, `add` evaluations (each once: the judge queue delivers at least
once); one owner reads them back in sequence order (`evaluations(after_seq)`), observes them and `save_alerts`; it
`checkpoint`s series states with the sequence number they include. After a crash the state is the checkpoint plus a
replay of the evaluations stored after it (`tracker.QualityTracker`): exactly the state of the committed
evaluations, without serialising every series per batch. The sequence is the order evaluations became visible, so
the owner never skips one committed late. Each store object is used from one thread.
`StatsStore` on SQLite is the embedded default (WAL; survives `kill -9`; several processes may add).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tracejudge.processor.component.database import Database
from tracejudge.processor.component.sqlite import MAX_INTEGER, SqliteDatabase
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

# Each entry is a migration (both engines run them, see processor/component/database.py).
MIGRATIONS = (
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
_INSERT = (f"INSERT INTO evaluations ({', '.join(FIELDS)}, stored_unix_s) VALUES ({', '.join('?' * len(FIELDS))}, ?) "
           "ON CONFLICT (span_id, trace_id, metric, judge_version) DO NOTHING")
_FEEDBACK_COLUMNS = ("feedback_id", "trace_id", "span_id", "time_unix_nano", "thumbs", "rating", "regenerated",
                     "edited_text", "comment", "source", "labels", "negative")
WHAT = "the statistics store"
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
        """Become (or still be) the one owner of the statistics — who observes evaluations, stores alerts and
        checkpoints — for as long as this store object is open and the process lives; False while another is.
        Asked again before each round of work."""
        ...

    def last_seq(self) -> int:
        """The sequence number of the last stored evaluation (0: none)."""
        ...

    def mark_observed(self, seq: int) -> None:
        """The owner has observed every evaluation up to `seq` (for processes that wait on it)."""
        ...

    def observed_seq(self) -> int:
        """Up to where the owner has observed (0: nothing yet)."""
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


class StatsStore:
    """The Store on a `processor.component.database` Database: a SQLite file (the embedded default; WAL, survives
    `kill -9`, several processes may add) or a PostgreSQL schema shared by a fleet. Each object is used from one
    thread."""

    def __init__(self, database: Database | str | Path, read_only: bool = False) -> None:
        """`database`: the store's, or the path of a SQLite file (created unless `read_only`)."""
        if isinstance(database, str | Path):
            if not read_only:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._db: Database = SqliteDatabase(database, MIGRATIONS, WHAT, read_only)
        else:
            self._db = database
        self.where = self._db.where

    def add(self, evaluations: Sequence[Evaluation], projects: Mapping[str, str] | None = None) -> int:
        rows = [[int(v) if isinstance(v, bool) else v for v in e.values()] + [time.time()] for e in evaluations]
        with self._db.write() as tx:
            tx.serialize("tracejudge evaluations")  # sequence numbers become visible in the order taken
            added = tx.executemany(_INSERT, rows)
            if projects:
                tx.executemany("INSERT INTO projects (service, project) VALUES (?, ?) ON CONFLICT (service) "
                               "DO UPDATE SET project = excluded.project", sorted(projects.items()))
        return added

    def save_alerts(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        with self._db.write() as tx:
            tx.executemany(
                f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(_ALERT_COLUMNS))}) "
                "ON CONFLICT (alert_id) DO NOTHING", [[a.row()[c] for c in _ALERT_COLUMNS] for a in alerts])

    def try_own(self) -> bool:
        # SQLite: a lock file beside the database; PostgreSQL: a session lock on a connection of its own. Either is
        # released when the owner dies; asked again every round, so an owner that lost it stops owning
        return self._db.try_lock("statistics-owner")

    def projects(self) -> dict[str, str]:
        return {str(s): str(p) for s, p in self._db.query("SELECT service, project FROM projects")}

    def last_seq(self) -> int:
        return int(self._db.query("SELECT coalesce(max(seq), 0) FROM evaluations")[0][0])

    def checkpoint(self, states: Mapping[SeriesKey, dict[str, Any]], through_seq: int) -> None:
        with self._db.write() as tx:
            tx.serialize("tracejudge checkpoint")  # a reader sees all of one checkpoint or none of it
            tx.executemany(
                "INSERT INTO series (key, service, prompt_version, model, metric, state, updated_unix_nano) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
                "updated_unix_nano = excluded.updated_unix_nano",
                [(str(key), key.service, key.prompt_version, key.model, key.metric, json.dumps(state, sort_keys=True),
                  int(state.get("updated_unix_nano", 0))) for key, state in states.items()])
            tx.execute("INSERT INTO meta (name, value) VALUES ('checkpoint_seq', ?) ON CONFLICT (name) "
                       "DO UPDATE SET value = excluded.value", (str(through_seq),))

    def mark_observed(self, seq: int) -> None:
        with self._db.write() as tx:
            tx.execute("INSERT INTO meta (name, value) VALUES ('observed_seq', ?) ON CONFLICT (name) "
                       "DO UPDATE SET value = excluded.value", (str(seq),))

    def observed_seq(self) -> int:
        rows = self._db.query("SELECT value FROM meta WHERE name = 'observed_seq'")
        return int(rows[0][0]) if rows else 0

    def series_states(self) -> tuple[dict[SeriesKey, dict[str, Any]], int]:
        with self._db.write() as tx:  # one snapshot of states and sequence number
            tx.serialize("tracejudge checkpoint")
            rows = tx.execute("SELECT service, prompt_version, model, metric, state FROM series ORDER BY key")
            seq = tx.execute("SELECT value FROM meta WHERE name = 'checkpoint_seq'")
        return ({SeriesKey(service, version, model, metric): json.loads(state)
                 for service, version, model, metric, state in rows}, int(seq[0][0]) if seq else 0)

    def evaluations_after(self, after_seq: int, limit: int) -> tuple[int, list[Evaluation]]:
        rows = self._db.query(f"SELECT seq, {', '.join(FIELDS)} FROM evaluations WHERE seq > ? ORDER BY seq "
                              "LIMIT ?", [after_seq, limit])
        return (rows[-1][0] if rows else after_seq), [Evaluation.from_values(row[1:]) for row in rows]

    def evaluations(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[Evaluation]]:
        while True:
            after_seq, found = self.evaluations_after(after_seq, batch)
            if not found:
                return
            yield found

    def alerts(self, trace_id: str = "") -> list[Alert]:
        if trace_id:  # the JSON examples hold the trace id as text: let the database pick the candidates
            rows = self._db.query(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE examples LIKE ? "
                                  "ORDER BY time_unix_nano, alert_id", [f'%"{trace_id}"%'])
        else:
            rows = self._db.query(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts ORDER BY time_unix_nano, alert_id")
        found = [_alert(dict(zip(_ALERT_COLUMNS, row, strict=True))) for row in rows]
        return [a for a in found if not trace_id or any(t == trace_id for t, _ in a.examples)]

    def undelivered(self) -> list[Alert]:
        return [_alert(dict(zip(_ALERT_COLUMNS, row, strict=True))) for row in self._db.query(
            f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE delivered = 0 ORDER BY time_unix_nano, alert_id "
            "LIMIT 1000")]

    def mark_delivered(self, alert_ids: Sequence[str]) -> None:
        with self._db.write() as tx:
            tx.executemany("UPDATE alerts SET delivered = 1 WHERE alert_id = ?", [(a,) for a in alert_ids])

    def save_feedback(self, feedback: Sequence[Feedback]) -> list[Feedback]:
        with self._db.write() as tx:
            new = []
            for record in feedback:  # one statement each: whether it inserted says which were new
                row = {k: int(v) if isinstance(v, bool) else v for k, v in record.row().items()}
                tx.execute(f"INSERT INTO feedback ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                           "ON CONFLICT (feedback_id) DO NOTHING", list(row.values()))
                if tx.changed:
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
        return [Feedback.from_row(dict(zip(_FEEDBACK_COLUMNS, row, strict=True))) for row in self._db.query(
            f"SELECT {', '.join(_FEEDBACK_COLUMNS)} FROM feedback {clause} ORDER BY time_unix_nano, feedback_id",
            params)]

    def trace_evaluations(self, trace_id: str) -> list[Evaluation]:
        rows = self._db.query(f"SELECT {', '.join(FIELDS)} FROM evaluations WHERE trace_id = ? ORDER BY seq",
                              [trace_id])
        return [Evaluation.from_values(row) for row in rows]

    def judged_traces(self) -> Iterator[tuple[str, str, str, float]]:
        for metric, version, trace, score in self._db.query(
                "SELECT metric, judge_version, trace_id, min(score) FROM evaluations "
                "GROUP BY metric, judge_version, trace_id ORDER BY metric, judge_version, trace_id"):
            yield str(metric), str(version), str(trace), float(score)

    def prune(self, older_than_unix_s: float, limit: int = 200) -> int:
        nanos = int(min(older_than_unix_s * 1e9, MAX_INTEGER))
        with self._db.write() as tx:
            row = tx.execute("SELECT value FROM meta WHERE name = 'checkpoint_seq'")
            checkpointed = int(row[0][0]) if row else 0
            # stored times grow with seq: the oldest are a prefix of the checkpointed rows
            tx.execute("DELETE FROM evaluations WHERE seq IN (SELECT seq FROM evaluations WHERE seq <= ? "
                       "ORDER BY seq LIMIT ?) AND stored_unix_s < ?", (checkpointed, limit, older_than_unix_s))
            deleted = tx.changed
            tx.execute("DELETE FROM feedback WHERE feedback_id IN (SELECT feedback_id FROM feedback WHERE "
                       "time_unix_nano < ? ORDER BY time_unix_nano LIMIT ?)", (nanos, limit))
            deleted += tx.changed
            tx.execute("DELETE FROM alerts WHERE alert_id IN (SELECT alert_id FROM alerts WHERE time_unix_nano < ? "
                       "AND delivered = 1 ORDER BY time_unix_nano LIMIT ?)", (nanos, limit))
            deleted += tx.changed
        self._db.give_back()
        return deleted

    def count(self, table: str) -> int:
        return int(self._db.query(f"SELECT count(*) FROM {table}")[0][0])

    def close(self) -> None:
        self._db.close()


def _alert(row: dict[str, Any]) -> Alert:
    key = SeriesKey(row["service"], row["prompt_version"], row["model"], row["metric"])
    return Alert(row["alert_id"], row["time_unix_nano"], key, row["cause"], row["detector"], row["summary"],
                 row["baseline"], row["current"], row["effect"], row["ci_low"], row["ci_high"], row["p_value"],
                 row["n_baseline"], row["n_current"], tuple(tuple(e) for e in json.loads(row["examples"])),
                 json.loads(row["details"]))
