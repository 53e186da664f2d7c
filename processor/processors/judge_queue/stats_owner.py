"""The statistics' owner: observes the evaluations the judge workers store (in any process), updates the series,
stores the alerts they raise, and sends those out as `tracejudge.alert` spans through the pipeline's exporters and,
if configured, to a webhook.

One owner per store at a time (`Store.try_own`: a lock the owner's death releases), so every series has one writer
and an alert is raised once; a stage that does not own the statistics keeps trying, and takes over from the last
checkpoint if the owner goes. The owner works on a thread of its own, so catching up after a restart never holds
the event loop. An alert is marked delivered once its span is in every exporter's queue; undelivered ones
(exporter queues full) are sent again with the next round, so an alert is never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import aiohttp

from tracejudge.processor.component.errors import PermanentError, RetryableError
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.processors.judge_queue.alert_spans import alert_request, webhook_body
from tracejudge.processor.processors.judge_queue.quality_metrics import QualitySeries
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.records import Alert
from tracejudge.stats.store import Store
from tracejudge.stats.tracker import QualityTracker

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the owner looks for evaluations stored by other processes (and a standby for the lock)
T = TypeVar("T")


class StatsOwner:
    def __init__(self, open_store: Callable[[], Store], config: StatsConfig, emit: TracesConsumer,
                 quality: QualitySeries | None = None) -> None:
        self._open_store = open_store
        self._config = config
        self._emit = emit
        self._quality = quality
        self._tracker: QualityTracker | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._webhook: aiohttp.ClientSession | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._projects: dict[str, str] = {}  # service → the Phoenix project its judged spans were last filed in

    @property
    def owning(self) -> bool:
        return self._tracker is not None

    def wake(self) -> None:
        """Evaluations were stored in this process: look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="stats-owner")
        self._task = asyncio.create_task(self._run(), name="stats owner")

    async def caught_up(self) -> bool:
        """Owning, and every stored evaluation observed and its alerts handed on."""
        tracker = self._tracker
        return tracker is not None and not await self._call(lambda: tracker.behind or bool(
            tracker.store.undelivered()))

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def _run(self) -> None:
        while True:
            try:
                if self._tracker is None:
                    self._tracker = await self._call(self._take)
                if self._tracker is not None:
                    await self._round(self._tracker)
            except Exception:  # the store failed: what is stored is observed again next round
                log.exception("stats: updating the statistics failed; trying again in %g s", POLL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()

    def _take(self) -> QualityTracker | None:
        store = self._open_store()
        if not store.try_own():
            store.close()
            return None
        log.info("stats: this process owns the statistics")
        return QualityTracker(store, self._config)

    async def _round(self, tracker: QualityTracker) -> None:
        def observe() -> tuple[list[Alert], list[Alert], dict[str, str]] | None:
            if not tracker.store.try_own():  # lost the lock (its connection broke): another may own them now
                tracker.store.close()
                return None
            raised = tracker.catch_up()
            return raised, tracker.store.undelivered(), tracker.store.projects()

        observed = await self._call(observe)
        if observed is None:
            log.warning("stats: this process no longer owns the statistics")
            self._tracker = None
            return
        raised, undelivered, self._projects = observed
        for alert in raised:
            log.warning("alert [%s] %s (%s): %s", alert.cause, alert.series, alert.detector, alert.summary)
            if self._quality is not None:
                self._quality.alert(alert)
        if undelivered:
            await self._deliver(tracker, undelivered)

    async def _deliver(self, tracker: QualityTracker, alerts: list[Alert]) -> None:
        request = alert_request(alerts, self._config.trace_links, self._projects)
        try:
            await self._emit.consume(TraceBatch(request.SerializeToString(), request, len(alerts)))
        except RetryableError as e:
            log.warning("stats: %d alert span(s) not accepted (%s); sending them with the next batch", len(alerts), e)
            return
        except PermanentError:
            log.exception("stats: alert spans refused; they stay in the store (tracejudge alerts)")
        await self._call(lambda: tracker.store.mark_delivered([a.alert_id for a in alerts]))
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

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._posts:
            log.warning("stats: stopping with %d webhook post(s) in flight; the alerts are in the store "
                        "(tracejudge alerts)", len(self._posts))
        for task in list(self._posts):
            task.cancel()
        await asyncio.gather(*self._posts, return_exceptions=True)
        if self._webhook is not None:
            await self._webhook.close()
            self._webhook = None
        tracker, self._tracker = self._tracker, None
        if self._executor is not None:
            if tracker is not None:
                await self._call(tracker.close)  # a checkpoint: the next owner starts from here
            self._executor.shutdown()
            self._executor = None
