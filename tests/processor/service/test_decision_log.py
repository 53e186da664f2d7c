"""Decision records: written in the background, read back per trace, never silently lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracejudge.processor.component.decisions import EXTRACTED, NO_CONTENT, Decision
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.pdata.llm_span import LlmSpan, Message, decision_for, span_decision
from tracejudge.processor.service.decision_log import DecisionLog


def llm_span(span_id: str, content: bool, trace_id: str = "ab" * 16) -> LlmSpan:
    output = (Message("assistant", "Paris."),) if content else ()
    return LlmSpan(trace_id=trace_id, span_id=span_id, parent_span_id="", service="shop", convention="gen_ai",
                   request_model="gpt-4o-mini", prompt_version="v3", output_messages=output)


def extracted(spans: list[LlmSpan]) -> list[Decision]:
    return [span_decision(span, decision_for(span)) for span in spans]


async def test_records_are_readable_per_trace_and_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "decisions.db")
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
