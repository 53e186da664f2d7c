"""`tracejudge explain TRACE_ID`: what happened to each LLM span of a trace, read from the decision records."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import IO

from tracejudge.processor.cli.config_option import add_config_option, with_config
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.decisions import Decision
from tracejudge.processor.service.decision_log import read_decisions, sqlite_decisions
from tracejudge.processor.service.service import decisions_database

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace_id", help="the trace id, 32 hex digits")
    add_config_option(parser, "the config the processor runs with, to find its decision records")
    parser.add_argument("--json", action="store_true", help="one JSON record per line instead of a table")


def run(args: argparse.Namespace) -> int:
    return with_config(args, lambda config: explain(lambda: decisions_database(config, read_only=True),
                                                    args.trace_id, args.json, sys.stdout))


def explain(open_log: str | Callable[[], Database | None], trace_id: str, as_json: bool, out: IO[str]) -> int:
    """0 if the trace has records, 1 if it has none, 2 if the question cannot be answered. `open_log`: the
    decision log's SQLite file, or opens its database (None: the config keeps it in memory)."""
    if not _TRACE_ID.fullmatch(trace_id):
        print(f"tracejudge explain: {trace_id!r} is not a trace id (32 hex digits)", file=sys.stderr)
        return 2
    try:
        database = sqlite_decisions(open_log, read_only=True) if isinstance(open_log, str) else open_log()
    except OSError as e:
        print(f"tracejudge explain: {e}", file=sys.stderr)
        return 2
    if database is None:
        print("tracejudge explain: this config keeps decision records in memory only; list a file_storage "
              "extension in service.extensions to keep them in <directory>/decisions.db (or a postgresql one)",
              file=sys.stderr)
        return 2
    where = database.where
    try:
        records = read_decisions(database, trace_id)
    except OSError as e:
        print(f"tracejudge explain: {e}", file=sys.stderr)
        return 2
    if not records:
        print(f"no decision records for trace {trace_id.lower()} in {where}: it held no LLM span, or it has not "
              "reached this processor", file=sys.stderr)
        return 1
    if as_json:
        for record in records:
            out.write(json.dumps(_as_dict(record)) + "\n")
        return 0
    by_span: dict[str, list[Decision]] = defaultdict(list)
    for record in records:
        by_span[record.span_id].append(record)
    out.write(f"trace {trace_id.lower()}: {len(by_span)} LLM span(s)\n")
    for span_id, spans in by_span.items():
        first = spans[0]
        out.write(f"\nspan {span_id}  service={first.service or '-'} model={first.model or '-'} "
                  f"prompt_version={first.prompt_version or '-'} convention={first.convention}\n")
        for record in spans:
            stamp = time.strftime("%H:%M:%S", time.gmtime(record.recorded_unix_s))
            metric = f" [{record.metric}]" if record.metric else ""
            out.write(f"  {stamp}  {record.decision}{metric}{_summary(record.detail)}\n")
    return 0


def _as_dict(record: Decision) -> dict[str, object]:
    fields = {name: getattr(record, name) for name in Decision.__dataclass_fields__}
    fields["detail"] = json.loads(record.detail) if record.detail else {}
    return fields


def score_text(score: float) -> str:
    """Two decimals, or as many as it takes not to round across a pass/fail boundary (0.4999 is not "0.50")."""
    for places in range(2, 7):
        text = f"{score:.{places}f}"
        if float(text) == score or math.floor(float(text) * 10) == math.floor(score * 10):
            return text
    return f"{score:.6f}"


def _summary(detail: str) -> str:
    if not detail:
        return ""
    facts = json.loads(detail)
    parts = []
    if facts.get("score") is not None:
        parts.append(f"score={score_text(facts['score'])} {facts.get('label', '')}".rstrip())
    for key in ("tier", "judge_model", "escalation", "degraded", "stratum"):
        if facts.get(key):
            parts.append(f"{key}={facts[key]}")
    if "probability" in facts:
        parts.append(f"p={facts['probability']:g}")
    if facts.get("cached"):
        parts.append("cached")
    if facts.get("content"):
        parts.append(f"content from {facts['content']}")
    if "wait_s" in facts:
        parts.append(f"(for up to {facts['wait_s']:g} s)")
    for key in ("reason", "error"):
        if facts.get(key):
            parts.append(f"({facts[key][:120]})")
    if facts.get("explanation") and facts.get("score") is None:
        parts.append(f"({facts['explanation'][:120]})")
    return "  " + " ".join(parts) if parts else ""
