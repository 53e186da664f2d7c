"""The judge workers' way into the statistics: judged verdicts become evaluations, stored with any alerts they raise
in one transaction (`judge_queue.stats.db` beside the judge queue) before the judge queue completes the items; then
the alerts go out as `tracejudge.alert` spans through the pipeline's exporters and, if configured, to a webhook.

An alert is marked delivered once its span is in every exporter's queue; undelivered ones (exporter queues full)
are sent again with the next batch, so an alert is never silently lost. A failed save raises: the items stay leased,
and are judged (from the verdict cache) and recorded again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tracejudge.judge.cascade import CascadeVerdict
from tracejudge.judge.checks import refusal
from tracejudge.judge.queue import JudgeItem
from tracejudge.processor.component.errors import PermanentError, RetryableError
from tracejudge.processor.component.sqlite import MAX_INTEGER
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.judge_queue.alert_spans import alert_request, webhook_body
from tracejudge.processor.processors.judge_queue.quality_metrics import QualitySeries
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.projection import QueryProjection
from tracejudge.stats.records import Alert, Evaluation
from tracejudge.stats.store import SqliteStore
from tracejudge.stats.tracker import QualityTracker

log = logging.getLogger(__name__)


class StatsRecorder:
    def __init__(self, path: Path, config: StatsConfig, emit: TracesConsumer, judge_version: str,
                 projection: QueryProjection | None = None, quality: QualitySeries | None = None) -> None:
        self._quality = quality
        self._config = config
        self._emit = emit
        self._judge_version = judge_version
        self._projection = projection
        self.tracker = QualityTracker(SqliteStore(path), config)
        self._webhook: aiohttp.ClientSession | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._projects: dict[str, str] = {}  # service → the Phoenix project its judged spans were last filed in

    @property
    def projects(self) -> dict[str, str]:
        """The Phoenix project each service's judged spans were last filed in."""
        return dict(self._projects)

    async def record(self, final: Sequence[tuple[JudgeItem, CascadeVerdict]]) -> list[Alert]:
        """Store the judged results of one batch and update the series; returns the alerts they raised."""
        judged = [(item, result) for item, result in final if result.verdict.score is not None]
        for item, _ in final:
            if item.body.get("project"):
                self._projects[str(item.body.get("service", ""))] = str(item.body["project"])
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
        alerts = self.tracker.record(evaluations)
        for alert in alerts:
            log.warning("alert [%s] %s (%s): %s", alert.cause, alert.series, alert.detector, alert.summary)
            if self._quality is not None:
                self._quality.alert(alert)
        await self._deliver()
        return alerts

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

    async def _deliver(self) -> None:
        alerts = self.tracker.store.undelivered()
        if not alerts:
            return
        request = alert_request(alerts, self._config.trace_links, self._projects)
        try:
            await self._emit.consume(TraceBatch(request.SerializeToString(), request, len(alerts)))
        except RetryableError as e:
            log.warning("stats: %d alert span(s) not accepted (%s); sending them with the next batch", len(alerts), e)
            return
        except PermanentError:
            log.exception("stats: alert spans refused; they stay in the store (tracejudge alerts)")
        self.tracker.store.mark_delivered([a.alert_id for a in alerts])
        if self._config.webhook.url:
            for alert in alerts:
                task = asyncio.create_task(self._post(alert))
                self._posts.add(task)
                task.add_done_callback(self._posts.discard)

    async def _post(self, alert: Alert) -> None:
        webhook = self._config.webhook
        if self._webhook is None:
            self._webhook = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=webhook.timeout))
        for attempt in range(3):
            try:
                body = webhook_body(alert, self._config.trace_links, self._projects.get(alert.series.service, ""))
                async with self._webhook.post(webhook.url, data=body,
                                              headers={"Content-Type": "application/json", **webhook.headers}
                                              ) as response:
                    if response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                problem = repr(e)
            await asyncio.sleep(0.5 * 2**attempt)
        log.warning("stats: webhook %s did not take alert %s (%s); it is in the store (tracejudge alerts)",
                    webhook.url, alert.alert_id, problem)

    async def close(self) -> None:
        if self._posts:
            log.warning("stats: stopping with %d webhook post(s) in flight; the alerts are in the store "
                        "(tracejudge alerts)", len(self._posts))
        for task in list(self._posts):
            task.cancel()
        await asyncio.gather(*self._posts, return_exceptions=True)
        if self._webhook is not None:
            await self._webhook.close()
        self.tracker.close()
