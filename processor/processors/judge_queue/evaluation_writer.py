"""The judge workers' way into the statistics: judged verdicts become evaluations, stored (`judge_queue.stats.db`
beside the judge queue) before the judge queue completes the items, so a crash cannot lose a score. Whoever owns
the statistics (`stats_owner`) observes them from there; workers in any process write, one owner reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.checks import refusal
from tracejudge.judge.queue import JudgeItem
from tracejudge.processor.component.sqlite import MAX_INTEGER
from tracejudge.stats.projection import QueryProjection
from tracejudge.stats.records import Evaluation
from tracejudge.stats.store import Store


class EvaluationWriter:
    def __init__(self, store: Store, judge_version: str, projection: QueryProjection | None = None,
                 on_added: Callable[[], None] | None = None) -> None:
        self.store = store
        self._judge_version = judge_version
        self._projection = projection
        self._on_added = on_added  # an owner in this process looks at once

    async def record(self, final: Sequence[tuple[JudgeItem, CascadeVerdict]]) -> None:
        """Store the judged results of one batch (those stored before are skipped); raises if they cannot be."""
        judged = [(item, result) for item, result in final if result.verdict.score is not None]
        projects = {str(item.body.get("service", "")): str(item.body["project"])
                    for item, _ in final if item.body.get("project")}
        # drift reads what users asked (not the system prompt, which a prompt edit changes), in the uniform stratum
        # only; a span judged on two metrics has one question
        queries = [str(item.body.get("question") or item.body.get("query", "")) for item, _ in judged]
        wanted = sorted({q for (item, _), q in zip(judged, queries, strict=True) if item.body.get("in_uniform")})
        projected: dict[str, tuple[float, ...]] = {}
        if self._projection is not None and wanted:
            points = await asyncio.get_running_loop().run_in_executor(None, self._projection, wanted)
            projected = dict(zip(wanted, points, strict=True))
        evaluations = [self._evaluation(item, result, query, projected.get(query, ()))
                       for (item, result), query in zip(judged, queries, strict=True)]
        if evaluations or projects:
            self.store.add(evaluations, projects)
            if self._on_added is not None:
                self._on_added()

    def _evaluation(self, item: JudgeItem, result: CascadeVerdict, query: str,
                    projection: tuple[float, ...]) -> Evaluation:
        body: dict[str, Any] = item.body
        verdict = result.verdict
        start, end = (min(int(body.get(key) or 0), MAX_INTEGER) for key in ("start_unix_nano", "end_unix_nano"))
        return Evaluation(
            trace_id=item.trace_id, span_id=item.span_id, time_unix_nano=start,
            service=str(body.get("service", "")), prompt_version=str(body.get("prompt_version") or ""),
            model=str(body.get("request_model") or body.get("response_model") or ""),
            response_model=str(body.get("response_model") or ""),
            fingerprint=str(body.get("model_fingerprint") or ""), metric=item.metric,
            score=float(verdict.score or 0.0), passed=verdict.as_evaluation().passed,
            probability=float(body.get("probability", 1.0)), stratum=str(body.get("stratum", "")),
            in_uniform=bool(body.get("in_uniform", False)), tier=verdict.tier, judge_model=verdict.judge_model,
            judge_version=self._judge_version, latency_s=max(0, end - start) / 1e9 if end else 0.0,
            tokens=int(body.get("input_tokens") or 0) + int(body.get("output_tokens") or 0),
            refused=refusal(str(body.get("response", ""))) is not None, query_words=len(query.split()),
            query_projection=projection)

    def close(self) -> None:
        self.store.close()
