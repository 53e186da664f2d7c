"""`tracejudge migrate-store`: a SQLite deployment's judge queue, statistics and decision records copied into a real
PostgreSQL, after which the CLI reads the same series, alerts, decisions, report, calibration and golden set from
either, the queue goes on where it
was (numbering included), and a second copy into the same database is refused."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.stats.test_store import CHANGE, CONFIG
from tests.support.postgres import PostgresServer
from tracejudge.judge import queue
from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig, NewItem
from tracejudge.processor.cli import main
from tracejudge.processor.component.decisions import JUDGED, Decision
from tracejudge.processor.component.postgres import PostgresDatabase
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.processor.service.decision_log import DecisionLog
from tracejudge.stats.store import StatsStore
from tracejudge.stats.tracker import QualityTracker

TRACE = CHANGE[0].trace_id


def config(storage: str) -> str:
    return f"""
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}}}}}}}
processors:
  llm_extract:
  sampler:
  judge_queue:
    storage: {storage}
    stats: {{cooldown: 0s}}
exporters: {{debug: {{}}}}
extensions:
  file_storage: {{directory: "${{env:TRACEJUDGE_DATA}}"}}
  postgresql: {{dsn: "${{env:TRACEJUDGE_PG_DSN}}"}}
service:
  extensions: [{storage}]
  pipelines: {{traces: {{receivers: [otlp], processors: [llm_extract, sampler, judge_queue], exporters: [debug]}}}}
"""


def item(n: int) -> NewItem:
    return NewItem(f"{n:016x}", TRACE, "relevancy", {"response": f"answer {n}"})


def deployment(data: Path) -> list[str]:
    """A stopped instance's stores: statistics with alerts and feedback, a queue mid-way, decision records."""
    tracker = QualityTracker(StatsStore(data / "judge_queue.stats.db"), CONFIG, checkpoint_every=128)
    alerts = [a.alert_id for start in range(0, len(CHANGE), 16) for a in tracker.record(CHANGE[start:start + 16])]
    tracker.store.save_feedback([Feedback(TRACE, thumbs=-1, comment="wrong").identified()])
    tracker.close()
    work = JudgeQueue(str(data / "judge_queue.db"), JudgeQueueConfig(), "1")
    work.enqueue([item(1), item(2), item(3)])
    work.complete([work.lease(1, 30)[0].key])
    work.add_spend("heavy", "2026-12-04", 0.25)
    work.close()

    async def decide() -> None:
        log = DecisionLog(str(data / "decisions.db"), Telemetry())
        await log.start()
        await log.write([Decision(TRACE, CHANGE[0].span_id, JUDGED, "rag", "gen_ai", "gpt-4o", "v1", time.time(),
                                  "relevancy", "{}")])
        await log.shutdown()

    asyncio.run(decide())
    return alerts


def test_a_sqlite_deployment_moves_to_postgresql_and_reads_the_same(
        tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    alerts = deployment(data)
    assert alerts
    (data / "otlp_queue.db").write_bytes(b"")  # an exporter's sending queue: it stays with its instance
    dsn = postgres.database("migrated")
    monkeypatch.setenv("TRACEJUDGE_DATA", str(data))
    monkeypatch.setenv("TRACEJUDGE_PG_DSN", dsn)
    (tmp_path / "sqlite.yaml").write_text(config("file_storage"))
    (tmp_path / "pg.yaml").write_text(config("postgresql"))

    assert main(["migrate-store", "--from", f"sqlite:{data}", "--to", dsn]) == 0
    report = capsys.readouterr().out
    assert "judge_queue.stats.db -> schema judge_queue_stats: alerts" in report and "otlp_queue" not in report

    def read(*command: str) -> str:
        assert main([*command]) == 0
        return capsys.readouterr().out

    for command in (["series", "--json"], ["alerts", "--json"], ["explain", TRACE, "--json"], ["report"],
                    ["calibration", "--json"]):
        on_sqlite = read(*command, "--config", str(tmp_path / "sqlite.yaml"))
        assert on_sqlite and read(*command, "--config", str(tmp_path / "pg.yaml")) == on_sqlite, command
    for engine in ("sqlite", "pg"):  # low scores of traces with negative feedback, from either engine
        read("golden", "export", "--out", str(tmp_path / f"{engine}.jsonl"),
             "--config", str(tmp_path / f"{engine}.yaml"))
    assert (tmp_path / "pg.jsonl").read_text() == (tmp_path / "sqlite.jsonl").read_text()
    assert [json.loads(line)["alert_id"] for line in read("alerts", "--json", "--config",
                                                            str(tmp_path / "pg.yaml")).splitlines()] == alerts
    assert main(["replay", "--config", str(tmp_path / "pg.yaml")]) == 0  # the copy replays to the stored alerts
    capsys.readouterr()

    shared = JudgeQueue(PostgresDatabase(dsn, "judge_queue", queue.MIGRATIONS, queue.WHAT), JudgeQueueConfig(), "1")
    assert shared.waiting() == 2 and shared.spent_usd("heavy", "2026-12-04") == 0.25
    assert shared.enqueue([item(4)]).inserted == 1  # numbering goes on after the copied rows
    assert sorted(i.span_id for i in shared.lease(10, 30)) == [item(n).span_id for n in (2, 3, 4)]
    shared.close()

    assert main(["migrate-store", "--from", f"sqlite:{data}", "--to", dsn]) == 1
    assert "already holds" in capsys.readouterr().err
