"""The `judge_queue` processor: commits the sampled LLM spans to the durable judge queue before the request is
acknowledged (one item per span and metric), and runs the workers that judge them off the request path."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tracejudge.judge.embedded_model import loaded
from tracejudge.judge.limits import TierGate
from tracejudge.judge.queue import Document, Enqueued, JudgeQueue, JudgeQueueStore, KeptSpan, NewItem
from tracejudge.judge.tiers import build_judges, effective_judge_version, resolve_adaptations
from tracejudge.processor.component.decisions import QUEUED, Decision, SpanFault
from tracejudge.processor.component.errors import RetryableError, StorageError
from tracejudge.processor.component.host import AdminRoute, CreateSettings
from tracejudge.processor.component.storage import DatabaseStorage
from tracejudge.processor.component.telemetry import SpanFaultMetrics
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.feedback import Feedback, FeedbackReceipt, problems
from tracejudge.processor.pdata.llm_span import span_decision
from tracejudge.processor.pdata.sample import Sample
from tracejudge.processor.processors.judge_queue import review_page
from tracejudge.processor.processors.judge_queue.config import JudgeQueueStageConfig
from tracejudge.processor.processors.judge_queue.decision_relay import DecisionRelay
from tracejudge.processor.processors.judge_queue.evaluation_writer import EvaluationWriter
from tracejudge.processor.processors.judge_queue.feedback_desk import FeedbackDesk
from tracejudge.processor.processors.judge_queue.feedback_trigger import FeedbackTrigger
from tracejudge.processor.processors.judge_queue.items import ItemWriter, item_body, item_decision
from tracejudge.processor.processors.judge_queue.metrics import JudgeQueueMetrics
from tracejudge.processor.processors.judge_queue.quality_metrics import QualityMetrics, QualitySeries
from tracejudge.processor.processors.judge_queue.review_queue import ReviewQueue
from tracejudge.processor.processors.judge_queue.stats_owner import StatsOwner
from tracejudge.processor.processors.judge_queue.stores import StageStores
from tracejudge.processor.processors.judge_queue.tier_health import TierHealth
from tracejudge.processor.processors.judge_queue.trace_assembly import TraceAssembly
from tracejudge.processor.processors.judge_queue.worker import JudgeWorker, set_budget_scale
from tracejudge.stats.projection import QueryProjection
from tracejudge.stats.records import Alert, Evaluation
from tracejudge.stats.store import StatsStore, Store

log = logging.getLogger(__name__)

SWEEP_S = 1.0  # how often expired kept spans, and what retention deletes, are looked for
SWEEP_ROWS = 200  # deleted per step
SWEEP_BUDGET_S = 0.02  # of event-loop time per sweep


@dataclass(frozen=True)
class _Staged:
    """What a batch brings to the judge queue, reserved until the exporters have taken the batch."""

    samples: list[Sample]
    items: list[NewItem]
    documents: Sequence[Document]
    kept: Sequence[KeptSpan]
    holds: Mapping[str, float]
    reserved: Enqueued


class FeedbackUnavailable(RetryableError):
    """Feedback before the stage started (or after it stopped): the client should retry."""


class JudgeQueueProcessor:
    """Place it after `sampler`. If the queue is full, the configured policy decides what is dropped; that is
    counted, logged and recorded, and never blocks forwarding. Evaluation spans go to `next_consumer` (and so to
    the pipeline's exporters) once judged. Offers `feedback` (the FeedbackDesk's, when statistics are on) and the
    admin route that resumes a paused tier.

    In `tracejudge serve` it takes items in, relays their decision records, keeps the feedback desk and sets the
    sampler's rate scale from the shared spend; it judges only with `workers.processes: 0`. In a judge worker
    process (`host.worker_process`) it only judges. The statistics are owned by one process where judging runs
    (`StatsOwner`: the first to take the lock)."""

    def __init__(self, settings: CreateSettings, config: JudgeQueueStageConfig, next_consumer: TracesConsumer,
                 clock: Callable[[], float] = time.time) -> None:
        host = settings.host
        storage: DatabaseStorage = host.find("extensions", "database", config.storage)
        self._stores = StageStores(settings.name, storage)
        self._config = config
        self._next = next_consumer
        self._id = f"processors/{settings.name}"
        self._name = settings.name
        self._worker_process = host.worker_process
        self._status = host.status
        self._metrics = host.telemetry.metrics(JudgeQueueMetrics)
        self._quality = QualitySeries(host.telemetry.metrics(QualityMetrics), config.max_quality_series)
        self._faults = host.telemetry.metrics(SpanFaultMetrics).unprocessable
        self._decisions = host.decisions
        self._scale = host.sampling_scale
        self._clock = clock
        self._queue: JudgeQueueStore | None = None
        self._writer: ItemWriter | None = None
        self.worker: JudgeWorker | None = None
        self.owner: StatsOwner | None = None  # would-be owner of the statistics, where judging runs
        self._store: Store | None = None  # the statistics' store: feedback, the review page, retention
        self._evaluations: EvaluationWriter | None = None
        self._budget_gates: dict[str, TierGate] = {}  # read-only, for the rate scale when judging elsewhere
        self.desk: FeedbackDesk | None = None
        self._assembly = TraceAssembly(config.decision_wait, config.max_decision_wait, config.max_buffered_traces,
                                       shared=storage.shared)
        self._trigger = FeedbackTrigger(config.feedback, clock)
        self._relay: DecisionRelay | None = None
        self._background: list[asyncio.Task[None]] = []
        self._warned_feedback = False

    async def consume(self, batch: TraceBatch) -> None:
        """The batch's judge items are reserved, the batch handed on, and the items committed only once every
        exporter took it: a refused request leaves nothing to judge, and its retry duplicates nothing. Committed
        before the ack: a crash after it cannot lose them."""
        if self._queue is None:
            await self._next.consume(batch)
            return
        try:
            staged = self._reserve(batch)
        except StorageError as error:  # nothing of the batch went anywhere yet: the client's retry is clean
            self._status.set_degraded(self._id, str(error))
            raise
        self._status.set_ok(self._id)
        try:
            await self._next.consume(batch)
        except BaseException:
            self._cancel(staged.items, staged.reserved.displaced)
            raise
        try:
            self._accepted(staged)
        except StorageError:  # the exporters have the batch: refusing now would duplicate it on the retry
            log.exception("judge items of an accepted request could not be committed; they are not judged")

    def _cancel(self, items: list[NewItem], displaced: Sequence[int]) -> None:
        """Items of a refused request are deleted; if the disk is too full even for that, they stay reserved (never
        judged, dropped at the next start) and the request's retry commits them."""
        assert self._queue is not None
        try:
            self._queue.cancel(items, displaced)
        except StorageError as e:
            log.warning("judge queue: %d item(s) of a refused request stay reserved (%s)", len(items), e)

    def _reserve(self, batch: TraceBatch) -> _Staged:
        assert self._queue is not None and self._writer is not None
        now = self._clock()
        if batch.feedback:  # first: an LLM span carrying its own thumbs-down is judged from this very batch
            self._span_feedback(batch.feedback)
        samples = [*batch.samples, *self._trigger.samples(batch)]
        markers = self._config.context_markers
        # kept only if feedback can be stored: it is stored with the statistics
        kept = self._trigger.kept(batch, samples, lambda sample: item_body(sample, "", markers)) if self.desk else []
        arrival = self._assembly.arrive(batch, {s.span.trace_id for s in samples}, now, {k.trace_id for k in kept})
        items = []
        for sample in list(samples):
            try:
                checks = batch.evaluations.get(sample.span.span_id, ())
                route = next((rule.name for rule in self._config.routes if rule.matches(sample.span, checks)), "")
                body = item_body(sample, route, markers)
            except Exception as error:  # one span's values must not fail its request
                samples.remove(sample)
                self._faults.labels("judge_queue", type(error).__name__).inc()
                self._decisions.record([SpanFault.of(sample.span.trace_id, sample.span.span_id, error)
                                        .decision("judge_queue")])
                continue
            ready = self._assembly.ready_at(sample.span.trace_id, now)
            items += [NewItem(sample.span.span_id, sample.span.trace_id, metric, body, ready)
                      for metric in self._config.metrics]
        reserved = self._writer.reserve(items) if items else Enqueued(0, [])
        return _Staged(samples, items, arrival.documents, kept, arrival.holds, reserved)

    def _accepted(self, staged: _Staged) -> None:
        assert self._queue is not None and self._writer is not None
        if staged.items or staged.documents or staged.kept:
            self._queue.commit(staged.items, staged.documents, staged.kept,
                               self._records(staged.samples, staged.reserved.turned_away, staged.items),
                               staged.reserved.displaced)
            self._writer.committed(staged.reserved)
        for trace, ready in staged.holds.items():
            self._queue.hold_trace(trace, ready)

    def _span_feedback(self, feedback: tuple[Feedback, ...]) -> None:
        if self.desk is None:
            if not self._warned_feedback:
                self._warned_feedback = True
                log.warning("feedback in span attributes is ignored: it is stored with the statistics, which are "
                            "off (processors.judge_queue.stats.enabled)")
            return
        self.desk.from_spans(feedback)

    async def _sweeping(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                self._sweep()
            except Exception:  # retention must not stop for good over one failure
                log.exception("judge queue: retention failed; tried again in %g s", SWEEP_S)

    def _sweep(self) -> None:
        """Forget reservations never answered, expire kept spans, then what retention deletes (finished items, old
        statistics), in small steps for at most SWEEP_BUDGET_S: it runs on the event loop. Judged elsewhere, the rate
        scale follows the spend."""
        queue = self._queue
        assert queue is not None
        feedback, retention = self._config.feedback, self._config.retention
        stats_cutoff = self._clock() - self._config.stats.retention
        queue.forget_reservations()
        steps: list[Callable[[], int]] = [
            lambda: queue.forget_kept(feedback.keep_unsampled, feedback.max_kept, SWEEP_ROWS),
            lambda: queue.prune(retention, SWEEP_ROWS)]
        if self._store is not None:
            store = self._store
            steps.append(lambda: store.prune(stats_cutoff, SWEEP_ROWS))
        if self._budget_gates:
            set_budget_scale(self._scale, self._budget_gates)
        started = time.monotonic()
        for step in steps:
            while step() >= SWEEP_ROWS and time.monotonic() - started < SWEEP_BUDGET_S:
                pass

    def _records(self, samples: list[Sample], turned_away: list[NewItem], items: list[NewItem]) -> list[Decision]:
        truncated = {item.span_id: item.body["truncated"] for item in items if "truncated" in item.body}
        assert self._writer is not None
        dropped = {(item.span_id, item.metric) for item in turned_away}
        reason = self._writer.dropped
        records = []
        for sample in samples:
            facts: dict[str, object] = {"probability": sample.decision.probability,
                                        "stratum": sample.decision.stratum, "scale": sample.decision.scale}
            if cut := truncated.get(sample.span.span_id):
                facts["truncated"] = cut  # the judge reads the beginning of these (full lengths in characters)
            detail = json.dumps(facts)
            records.append(span_decision(sample.span, QUEUED, detail=detail))
            records += [span_decision(sample.span, reason, metric) for metric in self._config.metrics
                        if (sample.span.span_id, metric) in dropped]
        # drop_oldest turns away items of earlier batches: their spans are not in this one
        spans = {s.span.span_id for s in samples}
        records += [item_decision(item.trace_id, item.span_id, item.body, reason, item.metric)
                    for item in turned_away if item.span_id not in spans]
        return records

    # -- the feedback API the eval_service finds (capability `feedback`) -------------------------------------
    def feedback(self, records: list[Feedback]) -> FeedbackReceipt:
        return self._desk().feedback(records)

    def trace_view(self, trace_id: str) -> tuple[list[Evaluation], list[Alert], list[Feedback]]:
        return self._desk().trace_view(trace_id)

    def _desk(self) -> FeedbackDesk:
        if self.desk is None:
            raise FeedbackUnavailable("the judge stage is not running; retry later")
        return self.desk

    @property
    def stats_store(self) -> Store:
        """The statistics' store (for the demo and tests)."""
        if self._store is None:
            raise RuntimeError("no statistics: the stage is not running or has stats.enabled off")
        return self._store

    async def idle(self, timeout_s: float, poll_s: float = 0.1) -> None:
        """Wait until nothing is left to judge (no item queued or leased), every decision record is in the
        decision log and the statistics have observed every evaluation; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while quiet < 2:  # twice in a row: a worker may be between leasing and completing
            queue = self._queue
            done = queue is not None and queue.waiting() == 0 and not queue.pending_decisions(1)
            quiet = quiet + 1 if done and await self._statistics_caught_up() else 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"the judge queue still had work after {timeout_s:g} s")
            await asyncio.sleep(poll_s)

    @property
    def worker_processes(self) -> int:
        """The judge worker processes the service should start for this stage (none in a worker itself)."""
        return 0 if self._worker_process else self._config.workers.processes

    async def _statistics_caught_up(self) -> bool:
        """Every stored evaluation observed and its alerts handed on, by whichever process owns the statistics."""
        if self.owner is not None:
            return await self.owner.caught_up()
        store = self._store
        return store is None or (store.observed_seq() >= store.last_seq() and not store.undelivered())

    def resume(self, tier: str) -> bool:
        """Resume a paused judge tier; False if this stage has no such tier."""
        return self.worker is not None and self.worker.resume(tier)

    def admin_routes(self) -> list[AdminRoute]:
        """POST /judge/tiers/{tier}/resume: resume a tier paused after an auth or billing error."""

        async def resume(request: web.Request) -> web.Response | None:
            tier = request.match_info["tier"]
            return web.json_response({"resumed": tier}) if self.resume(tier) else None

        async def page(request: web.Request) -> web.Response | None:
            if self._store is None:
                return None
            review = Path(self._config.review.path) if self._config.review.path else None
            # on the event loop: the store belongs to its thread (an operator's occasional look, not traffic)
            text = review_page.render(self._store, review, self._config.stats.trace_links, self._store.projects())
            return web.Response(text=text, content_type="text/html")

        async def label(request: web.Request) -> web.Response | None:
            if self.desk is None:
                return None
            form = await request.post()
            fields = {name: str(form.get(name, "")) for name in ("trace_id", "span_id", "metric", "passed", "note")}
            record = review_page.label(fields["trace_id"], fields["span_id"], fields["metric"],
                                       fields["passed"] == "pass", fields["note"][:2000])
            wrong = problems(record, "label") + ([] if fields["metric"] and fields["passed"] in ("pass", "fail") else
                                                ["label: give metric and passed (pass or fail)"])
            if wrong:
                return web.json_response({"error": "; ".join(wrong)}, status=400)
            try:
                self.desk.feedback([record])
            except StorageError as e:
                return web.json_response({"error": f"the label could not be stored ({e}); try again"}, status=503)
            return web.Response(status=303, headers={"Location": "/review"})  # see the page, counted

        no_stats = "the review page needs a judge_queue with statistics on (stats.enabled)"
        return [AdminRoute("POST", "/judge/tiers/{tier}/resume", resume,
                           "no judge tier {tier!r} in this configuration"),
                AdminRoute("GET", "/review", page, no_stats), AdminRoute("POST", "/review/label", label, no_stats)]

    async def start(self) -> None:
        config = self._config
        judging = bool(self._worker_process) or config.workers.processes == 0
        if judging:  # the embedded model takes a second or two to load: off the event loop, before the judges
            await asyncio.to_thread(self._load_models)
        from tracejudge.judge.adaptation_store import AdaptationStore  # numpy: only once judging may start

        adaptations = await asyncio.to_thread(
            resolve_adaptations, config.judges, lambda: AdaptationStore(self._stores.adaptations()),
            f"processors.{self._name}.judges")
        # a new embedded model or adaptation is a new judge: items, evaluations (whose series restart at the switch)
        # and spans say so
        judge_version = effective_judge_version(config.judge_version, config.judges, adaptations)
        if adaptations:
            log.info("%s: judging with %s (judge_version %s)", self._id,
                     ", ".join(f"{tier} adapted by {a.version}" for tier, a in adaptations.items()), judge_version)
        self._queue = JudgeQueue(self._stores.queue(), config.queue, judge_version,
                                 intake=not self._worker_process)
        stats = config.stats
        if not self._worker_process:
            await self._start_intake()
        if judging:
            if stats.enabled:  # the statistics' owner runs where the judging does: its CPU is judging's too
                self.owner = StatsOwner(lambda: StatsStore(self._stores.stats()), stats, self._next, self._quality)
                await self.owner.start()
                projection = QueryProjection(loaded(), seed=stats.seed) if stats.embeddings else None
                self._evaluations = EvaluationWriter(StatsStore(self._stores.stats()), judge_version,
                                                     projection, self.owner.wake if self.owner else None)
            review = ReviewQueue(config.review, judge_version) if config.review.path else None
            self.worker = JudgeWorker(self._queue, build_judges(config.judges, self._queue, adaptations),
                                      config.workers,
                                      self._next, self._metrics, None if self._worker_process else self._scale,
                                      judge_version, self._evaluations, review,
                                      TierHealth(self._status, self._id), self._quality,
                                      documents_kept_s=2 * config.max_decision_wait)
            await self.worker.start()
        else:  # worker processes judge: the sampler's rate scale follows the spend they record
            self._budget_gates = {tier: TierGate(tier, tier_config.limits, self._queue)
                                  for tier, tier_config in (("local", config.judges.local),
                                                            ("heavy", config.judges.heavy))
                                  if tier_config.judge != "none" and tier_config.limits.daily_budget_usd}

    async def _start_intake(self) -> None:
        assert self._queue is not None
        self._writer = ItemWriter(self._queue, self._metrics, self._config.queue.when_full)
        if self._config.stats.enabled:
            self._store = store = StatsStore(self._stores.stats())
            since = self._clock() - self._config.feedback.wait_for_trace
            self._trigger.wait_for(store.feedback(negative_since_unix_nano=int(since * 1e9)))
            self.desk = FeedbackDesk(self._queue, self._writer, store, self._trigger, self._config.metrics,
                                     self._clock)
        self._relay = DecisionRelay(self._queue, self._decisions)
        self._background = [asyncio.create_task(self._relay.run(), name="decision relay"),
                            asyncio.create_task(self._sweeping(), name="judge queue retention")]

    def _load_models(self) -> None:
        for tier in (self._config.judges.local, self._config.judges.heavy):
            if tier.judge == "embedded":
                loaded(Path(tier.model)) if tier.model else loaded()
        if self._config.stats.enabled and self._config.stats.embeddings:
            loaded()

    async def shutdown(self) -> None:
        self.desk = None
        if self.worker is not None:
            await self.worker.shutdown()
            self.worker = None
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        if self._relay is not None:
            await self._relay.drain()
            self._relay = None
        if self.owner is not None:
            await self.owner.shutdown()
            self.owner = None
        for store in (self._evaluations, self._store, self._queue):
            if store is not None:
                store.close()
        self._evaluations = self._store = self._queue = None
