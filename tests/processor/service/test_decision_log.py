"""Decision records: written in the background, read back per trace (on both engines), never silently lost."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.postgres import OpenDatabase
from tests.support.waiting import eventually
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.decisions import EXTRACTED, NO_CONTENT, Decision
from tracejudge.processor.component.sqlite import Retention
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.pdata.llm_span import LlmSpan, Message, extraction_decision
from tracejudge.processor.service.decision_log import MIGRATIONS, WHAT, DecisionLog, read_decisions


def llm_span(span_id: str, content: bool, trace_id: str = "ab" * 16) -> LlmSpan:
    output = (Message("assistant", "Paris."),) if content else ()
    return LlmSpan(trace_id=trace_id, span_id=span_id, parent_span_id="", service="shop", convention="gen_ai",
                   request_model="gpt-4o-mini", prompt_version="v3", output_messages=output)


def extracted(spans: list[LlmSpan]) -> list[Decision]:
    return [extraction_decision(span) for span in spans]


async def test_records_are_readable_per_trace_and_survive_a_restart(open_database: OpenDatabase) -> None:
    def path() -> Database:  # each log opens its database on its own thread
        return open_database(MIGRATIONS, "decisions", WHAT)

    log = DecisionLog(path, Telemetry())
    await log.start()
    log.record(extracted([llm_span("01" * 8, True), llm_span("02" * 8, False), llm_span("03" * 8, True, "cd" * 16)]))
    got = await log.for_trace("AB" * 16)
    assert [(d.span_id, d.decision, d.model, d.prompt_version) for d in got] == [
        ("01" * 8, EXTRACTED, "gpt-4o-mini", "v3"), ("02" * 8, NO_CONTENT, "gpt-4o-mini", "v3")]
    await log.shutdown()
    reopened = DecisionLog(path, Telemetry())
    await reopened.start()
    assert len(await reopened.for_trace("cd" * 16)) == 1
    await reopened.shutdown()
    with pytest.raises(RuntimeError, match="not running"):
        await reopened.for_trace("cd" * 16)


async def test_records_beyond_the_backlog_limit_are_counted_as_dropped(tmp_path: Path) -> None:
    telemetry = Telemetry()
    log = DecisionLog(str(tmp_path / "d.db"), telemetry, max_pending=2)
    # Not started: nothing drains the backlog, so the third and fourth records cannot be kept.
    log.record(extracted([llm_span(f"{i:016x}", True) for i in range(4)]))
    assert telemetry.registry.get_sample_value("tracejudge_decisions_dropped_total") == 2
    await log.start()
    assert len(await log.for_trace("ab" * 16)) == 2
    await log.shutdown()


async def test_retention_deletes_records_past_their_age_then_the_oldest_past_the_size(tmp_path: Path) -> None:
    path = str(tmp_path / "decisions.db")
    now = time.time()
    old = [Decision("ab" * 16, f"{n:016x}", EXTRACTED, "shop", "gen_ai", "m", "v1", now - 8 * 86400) for n in range(3)]
    new = [Decision("cd" * 16, f"{n:016x}", EXTRACTED, "shop", "gen_ai", "m", "v1", now - n, detail="x" * 3000)
           for n in range(600)]
    log = DecisionLog(path, Telemetry(), retention=Retention(max_age=7 * 86400, max_mib=1))
    await log.start()
    try:
        await log.write(old + new)
        await eventually(lambda: not read_decisions(path, "ab" * 16), what="the week-old records deleted")
        # 600 records of 3 KB are over 1 MiB: the oldest go until it is under
        await eventually(lambda: len(read_decisions(path, "cd" * 16)) < 400, what="the oldest records deleted")
        kept = read_decisions(path, "cd" * 16)
        assert {d.span_id for d in kept} == {f"{n:016x}" for n in range(len(kept))}  # the newest stay
        assert len(kept) > 150  # no more than needed went (a 3 KB record takes a 4 KiB page)
    finally:
        await log.shutdown()


async def test_a_write_its_caller_stopped_waiting_for_is_skipped_without_an_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """At shutdown the relay stops waiting for a write still queued behind another; the log thread must neither
    fail on the cancelled future nor write what the caller keeps and hands over again."""
    path = str(tmp_path / "decisions.db")
    log = DecisionLog(path, Telemetry())
    await log.start()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the first write waits for the lock, the second behind it
    first = asyncio.create_task(log.write(extracted([llm_span("01" * 8, True)])))
    second = asyncio.create_task(log.write(extracted([llm_span("02" * 8, True)])))
    await asyncio.sleep(0.2)
    second.cancel()
    locker.execute("ROLLBACK")
    locker.close()
    await first
    assert [d.span_id for d in await log.for_trace("ab" * 16)] == ["01" * 8]
    await log.shutdown()
    assert "database request failed" not in caplog.text
