"""Repeated `kill -9` under load (bench/crash.py, smaller): nothing acknowledged is lost, every sampled LLM span is
judged, and every judged span's decision record says so. `make fuzz` runs it with 35 kills."""

from __future__ import annotations

from pathlib import Path

from bench.crash import crash_run


async def test_repeated_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    result = await crash_run(kills=3, interval_s=2.0, directory=tmp_path)
    print("\n".join(result.lines()))
    assert result.requests_acked > 100 and result.acked > 0
    assert result.lost == 0 and result.delivered == result.acked
    assert result.llm_evaluated == result.llm_acked
    assert result.judged_without_record == 0
