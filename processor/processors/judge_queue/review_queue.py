"""The review queue: judged items a person should look at, appended to a JSONL file. An item goes there when the
cascade's tiers disagreed (the local and the heavy verdict differ in label, or in score by at least `disagreement`)
or when the deciding verdict's confidence is below `min_confidence`. A reviewer's verdict comes back as feedback with
`labels` (EvalService), which `tracejudge calibration` compares with the judge's. The file rolls over at `max_mib`:
two files at most are kept (<path> and <path>.1)."""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.queue import JudgeItem
from tracejudge.processor.component.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReviewConfig:
    path: str = ""  # the JSONL file items for review are appended to; "" turns the review queue off
    min_confidence: float = 0.0  # verdicts less confident than this are reviewed (0: none for that reason)
    disagreement: float = 0.5  # local and heavy scores this far apart are reviewed (labels differing always are)
    max_mib: int = 64  # past this the file is renamed <path>.1 (replacing the one before) and a new one begun

    def validate(self, path: str) -> None:
        problems = [f"{path}.{name}: must be in [0, 1]" for name in ("min_confidence", "disagreement")
                    if not 0 <= getattr(self, name) <= 1]
        if self.max_mib < 1:
            problems.append(f"{path}.max_mib: must be at least 1")
        if problems:
            raise ConfigError(problems)


def review_reason(result: CascadeVerdict, config: ReviewConfig) -> str:
    """Why a person should look at this verdict ("" if there is no reason)."""
    verdict, local = result.verdict, result.local
    if (local is not None and local is not verdict and local.score is not None and verdict.score is not None
            and verdict.tier != local.tier):
        if local.label != verdict.label:
            return f"tiers disagree: {local.tier} {local.label} ({local.score:.2f}), {verdict.tier} " \
                   f"{verdict.label} ({verdict.score:.2f})"
        if abs(local.score - verdict.score) >= config.disagreement:
            return f"tiers disagree: {local.tier} {local.score:.2f}, {verdict.tier} {verdict.score:.2f}"
    if verdict.score is not None and verdict.confidence < config.min_confidence:
        return f"low confidence: {verdict.confidence:.2f} < {config.min_confidence:g}"
    return ""


class ReviewQueue:
    def __init__(self, config: ReviewConfig, judge_version: str) -> None:
        self._config = config
        self._path = Path(config.path)
        self._judge_version = judge_version

    def add(self, final: Sequence[tuple[JudgeItem, CascadeVerdict]], contexts: Mapping[int, str]) -> int:
        """Append the items that need a person; returns how many. A file that cannot be written is logged, and
        judging goes on (the verdicts themselves are stored either way)."""
        lines = []
        for item, result in final:
            reason = review_reason(result, self._config)
            if reason:
                lines.append(json.dumps(self._entry(item, result, reason, contexts.get(item.key, ""))))
        if not lines:
            return 0
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # worker processes append to one file: whole lines, and a roll-over nobody is writing through
            with self._path.with_name(self._path.name + ".lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                with self._path.open("a", encoding="utf-8") as file:
                    file.write("\n".join(lines) + "\n")
                    full = file.tell() > self._config.max_mib * 1024 * 1024
                if full:  # the reviewer has the previous file until the next roll-over
                    self._path.replace(self._path.with_name(self._path.name + ".1"))
        except OSError as e:
            log.error("review queue: cannot append %d item(s) to %s: %s", len(lines), self._path, e)
            return 0
        return len(lines)

    def _entry(self, item: JudgeItem, result: CascadeVerdict, reason: str, context: str) -> dict[str, Any]:
        verdicts = [result.verdict] if result.local in (None, result.verdict) else [result.local, result.verdict]
        return {
            "trace_id": item.trace_id, "span_id": item.span_id, "metric": item.metric, "reason": reason,
            "judge_version": self._judge_version, "service": item.body.get("service", ""),
            "prompt_version": item.body.get("prompt_version", ""),
            "query": item.body.get("query", ""), "response": item.body.get("response", ""), "context": context,
            "verdicts": [{"tier": v.tier, "score": v.score, "label": v.label, "confidence": v.confidence,
                          "explanation": v.explanation[:500]} for v in verdicts if v is not None],
            # fill in `passed` and POST this to the eval_service's /v1/feedback to record the reviewer's verdict
            "feedback": {"trace_id": item.trace_id, "span_id": item.span_id, "source": "reviewer",
                         "labels": [{"metric": item.metric, "passed": None}]},
        }  # fmt: skip
