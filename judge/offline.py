"""`tracejudge judge`: judge records from a JSONL file, for offline use and benchmarks."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import IO, Any

from tracejudge.processor.component.errors import PermanentError

from .cascade import Cascade, CascadeConfig, CascadeItem, CascadeVerdict
from .server_config import OpenAiJudgeConfig
from .tiers import JudgesConfig, TierConfig, build_judges
from .verdict import JudgeInput

BATCH = 64
TIERS = ("local", "heavy", "cascade")


class InputError(PermanentError):
    """A record the judge cannot read; the message names the line."""


def read_records(lines: IO[str], metric: str) -> Iterator[tuple[str, JudgeInput]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"line {number}: not JSON: {e}") from e
        if not isinstance(record, dict) or "id" not in record or "response" not in record:
            raise InputError(f"line {number}: a record needs at least `id` and `response`")
        yield str(record["id"]), JudgeInput(metric, str(record.get("query") or ""), str(record["response"]),
                                            _context(record.get("context")))


def _context(value: Any) -> str:
    if isinstance(value, list):
        return "\n\n".join(str(v) for v in value)
    return str(value or "")


def result_record(record_id: str, result: CascadeVerdict) -> dict[str, Any]:
    verdict = result.verdict
    return {"id": record_id, "score": verdict.score, "label": verdict.label, "tier": verdict.tier,
            "error.type": verdict.error_type or None, "explanation": verdict.explanation,
            "judge_model": verdict.judge_model, "escalation": result.escalation or None,
            "degraded": result.degraded or None, "cost_usd": verdict.cost_usd}


async def judge_file(source: IO[str], sink: IO[str], metric: str, judge: Cascade, progress: IO[str] = sys.stderr
                     ) -> tuple[int, int]:
    """Judge every record of `source` into `sink`; returns (records, unjudged)."""
    done = unjudged = 0
    batch: list[tuple[str, JudgeInput]] = []

    async def flush() -> None:
        nonlocal done, unjudged
        results = await judge.judge([CascadeItem(item) for _, item in batch])
        for (record_id, _), result in zip(batch, results, strict=True):
            sink.write(json.dumps(result_record(record_id, result)) + "\n")
            unjudged += not result.verdict.judged
        done += len(batch)
        batch.clear()
        progress.write(f"\rjudged {done} record(s), {unjudged} unjudged")
        progress.flush()

    for entry in read_records(source, metric):
        batch.append(entry)
        if len(batch) == BATCH:
            await flush()
    if batch:
        await flush()
    progress.write("\n")
    return done, unjudged


def run(input_path: str, output_path: str, metric: str, tier: str, heavy: OpenAiJudgeConfig | None = None,
        cascade: CascadeConfig | None = None) -> int:
    """`heavy` configures the heavy tier (required for tiers heavy and cascade)."""
    if tier != "local" and heavy is None:
        raise ValueError(f"tier {tier} needs the heavy tier's OpenAiJudgeConfig")
    config = JudgesConfig(
        local=TierConfig(judge="none" if tier == "heavy" else "embedded"),
        heavy=TierConfig(judge="openai", server=heavy) if tier != "local" else TierConfig(judge="none"),
        cascade=cascade or CascadeConfig())

    async def judge_all(source: IO[str], sink: IO[str]) -> tuple[int, int]:
        judges = build_judges(config, None)
        try:
            return await judge_file(source, sink, metric, judges.cascade)
        finally:
            await judges.close()

    try:
        with open(input_path, encoding="utf-8") as source, open(output_path, "w", encoding="utf-8") as sink:
            done, unjudged = asyncio.run(judge_all(source, sink))
    except InputError as e:
        print(f"{input_path}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tracejudge judge: {e}", file=sys.stderr)
        return 1
    print(f"{output_path}: {done} verdict(s), {unjudged} unjudged", file=sys.stderr)
    return 0
