"""The judge workers: lease items from the judge queue, run the cascade, send the results into the traces as
evaluation spans, hand them to the statistics, record each span's fate, and complete the items.

An item is completed only after its evaluation span is in every exporter's queue, so a crash (or full exporter
queues) means it is judged again later; the verdict cache makes that cheap and the evaluation span id is
deterministic, so a backend deduplicating on span id keeps one. Transient failures (a tier down with no other tier
to answer) are retried after a backoff up to `max_attempts`, then the item is unjudged; items whose only tier is
paused or out of budget wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

from tracejudge.judge.cascade import INPUT_ERRORS, CascadeItem, CascadeVerdict
from tracejudge.judge.limits import TierGate
from tracejudge.judge.queue import Document, JudgeItem, WorkQueue
from tracejudge.judge.tiers import Judges
from tracejudge.judge.verdict import JudgeInput
from tracejudge.processor.component.decisions import JUDGED, UNJUDGED, WAITING, Decision
from tracejudge.processor.component.errors import PermanentError, RetryableError
from tracejudge.processor.component.host import RateScale
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.evaluation_events import PHOENIX_PROJECT, JudgedSpan, Plain, evaluation_request
from tracejudge.processor.processors.judge_queue.config import WorkerConfig
from tracejudge.processor.processors.judge_queue.evaluation_writer import EvaluationWriter
from tracejudge.processor.processors.judge_queue.items import item_decision
from tracejudge.processor.processors.judge_queue.metrics import JudgeQueueMetrics
from tracejudge.processor.processors.judge_queue.quality_metrics import QualitySeries
from tracejudge.processor.processors.judge_queue.review_queue import ReviewQueue
from tracejudge.processor.processors.judge_queue.tier_health import TierHealth
from tracejudge.processor.processors.judge_queue.trace_assembly import context_for

log = logging.getLogger(__name__)

# Unjudged for good: the input cannot be judged, or the judge answered but not with a verdict.
FINAL_ERRORS = INPUT_ERRORS | {"unsupported_metric", "parse_error"}
# Nothing was tried: the only tier that could answer is paused or out of budget. Such items wait, however long,
# without using up their attempts (the queue's bound and its when_full policy still apply).
WAITING_ERRORS = frozenset({"tier_paused", "budget_exhausted"})
MIN_SCALE = 0.1  # the sampler keeps at least this share of its rates, however low the budget
EVALUATION_SPAN_NS = 1_000  # an evaluation span's duration, and how far before the judged span's end it ends


class JudgeWorker:
    def __init__(self, queue: WorkQueue, judges: Judges, config: WorkerConfig, emit: TracesConsumer,
                 metrics: JudgeQueueMetrics, scale: RateScale | None, judge_version: str,
                 stats: EvaluationWriter | None = None, review: ReviewQueue | None = None,
                 health: TierHealth | None = None, quality: QualitySeries | None = None,
                 documents_kept_s: float = 0.0) -> None:
        self._queue = queue
        self._documents_kept_s = documents_kept_s  # documents of traces with nothing queued, kept at least this long
        self._quality = quality
        self._health = health
        self._judges = judges
        self._config = config
        self._emit = emit
        self._metrics = metrics
        self._scale = scale
        self._judge_version = judge_version
        self._stats = stats
        self._review = review
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._rounds = 0

    async def start(self) -> None:
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._run(), name=f"judge-worker-{i}") for i in range(self._config.count)]

    async def shutdown(self) -> None:
        """Stop leasing; judging in progress is abandoned (its leases run out and it is judged after a restart)."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._judges.close()

    def resume(self, tier: str) -> bool:
        gate = self._judges.gates.get(tier)
        if gate is None:
            return False
        gate.resume()
        self._update_state()
        return True

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad item or a bug must not stop judging; the lease brings the items back
                log.exception("judge worker: judging a batch failed")
                handled = 0
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._config.poll_interval)

    async def run_once(self) -> int:
        """Lease one batch of ready items and see it through; returns how many items were leased. If the batch
        fails, each item is tried alone, so a poisoned one holds up no other; an item that keeps failing is set
        aside (see `_failed`)."""
        items = self._queue.lease(self._config.batch_size, self._config.lease)
        self._update_state()
        if not items:
            return 0
        try:
            await self._see_through(items)
        except Exception as error:
            if len(items) == 1:
                self._failed(items[0], error)
            else:
                log.warning("judge worker: a batch of %d items failed (%s: %s); trying them one by one", len(items),
                            type(error).__name__, error)
                for item in items:
                    try:
                        await self._see_through([item])
                    except Exception as alone:
                        self._failed(item, alone)
        self._update_state()
        return len(items)

    def _failed(self, item: JudgeItem, error: Exception) -> None:
        """Retry a failing item later, up to max_attempts; then set it aside for good: completed, with the
        decision `unjudged: <error type>` (the dead letter: it is never judged or sent again)."""
        if item.attempts < self._config.max_attempts:
            log.warning("judge worker: item %s/%s failed (%s: %s); retried later", item.span_id, item.metric,
                        type(error).__name__, error)
            self._queue.release([item.key], self._config.retry_backoff * item.attempts)
            return
        log.error("judge worker: item %s/%s failed %d times; set aside as unjudged", item.span_id, item.metric,
                  item.attempts, exc_info=error)
        self._queue.complete([item.key], decisions=[item_decision(
            item.trace_id, item.span_id, item.body, f"{UNJUDGED}: {type(error).__name__}", item.metric,
            json.dumps({"explanation": f"failed {item.attempts} times: {str(error)[:300]}"}))])
        self._metrics.verdicts.labels("none", item.metric, type(error).__name__).inc()

    async def _see_through(self, items: list[JudgeItem]) -> None:
        documents = self._queue.documents(item.trace_id for item in items)
        grounding = {item.key: _grounding(item, documents.get(item.trace_id, ())) for item in items}
        inputs = [CascadeItem(JudgeInput(item.metric, item.body.get("query", ""), item.body.get("response", ""),
                                         grounding[item.key][0]), item.body.get("route", "")) for item in items]
        started = time.time_ns()
        verdicts = await self._judges.cascade.judge(inputs)
        ended = time.time_ns()
        if self._health is not None:
            self._health.observe(verdicts)
        final = self._retry_transient(list(zip(items, verdicts, strict=True)))
        if final and not await self._send(final, started, ended):
            return
        if self._stats is not None:
            await self._stats.record(final)  # committed before the items complete: a crash cannot lose a score
        contexts = {item.key: cascade_item.input.context for item, cascade_item in zip(items, inputs, strict=True)}
        if self._review is not None:
            self._review.add(final, contexts)
        sources = {key: source for key, (_, source) in grounding.items()}
        self._queue.complete((item.key for item, _ in final), contexts, self._records(final, sources))
        self._rounds += 1
        if self._rounds % 100 == 0:
            self._queue.forget_documents(self._documents_kept_s)

    def _retry_transient(self, results: list[tuple[JudgeItem, CascadeVerdict]]
                         ) -> list[tuple[JudgeItem, CascadeVerdict]]:
        """Give items that failed for a passing reason back to the queue (with a backoff); return the others."""
        final = []
        for item, result in results:
            error = result.verdict.error_type
            if error in WAITING_ERRORS:
                self._queue.release([item.key], self._config.retry_backoff * min(item.attempts, 10), [item_decision(
                    item.trace_id, item.span_id, item.body, f"{WAITING}: {error}", item.metric,
                    json.dumps({"explanation": result.verdict.explanation[:300]}))])
            elif error and error not in FINAL_ERRORS and item.attempts < self._config.max_attempts:
                self._queue.release([item.key], self._config.retry_backoff * min(item.attempts, 10))
            else:
                final.append((item, result))
        return final

    async def _send(self, final: list[tuple[JudgeItem, CascadeVerdict]], started: int, ended: int) -> bool:
        by_span: dict[tuple[str, str], list[tuple[JudgeItem, CascadeVerdict]]] = defaultdict(list)
        for item, result in final:
            by_span[(item.trace_id, item.span_id)].append((item, result))
        judged = [self._judged_span(entries, started, ended) for entries in by_span.values()]
        request = evaluation_request(judged)
        batch = TraceBatch(request.SerializeToString(), request, len(judged))
        try:
            await self._emit.consume(batch)
        except RetryableError as e:
            log.warning("judge worker: evaluation spans not accepted (%s); judging again in %g s", e,
                        self._config.retry_backoff)
            self._queue.release((item.key for item, _ in final), self._config.retry_backoff)
            return False
        except PermanentError:
            log.exception("judge worker: evaluation spans refused; the items are completed without them")
        return True

    def _judged_span(self, entries: list[tuple[JudgeItem, CascadeVerdict]], started: int, ended: int) -> JudgedSpan:
        first = entries[0][0]
        body = first.body
        attributes: dict[str, Plain] = {
            "tracejudge.judge.version": self._judge_version,
            "tracejudge.sample.probability": float(body.get("probability", 1.0)),
            "tracejudge.sample.stratum": str(body.get("stratum", "")),
            "tracejudge.sample.in_uniform": bool(body.get("in_uniform", False)),
            "tracejudge.cost_usd": sum(result.verdict.cost_usd for _, result in entries),
            "gen_ai.prompt.version": str(body.get("prompt_version", "")),
            "gen_ai.response.model": str(body.get("response_model") or body.get("request_model", "")),
        }
        attributes["tracejudge.judge.started_at"] = _rfc3339(started)
        attributes["tracejudge.judge.duration_s"] = round((ended - started) / 1e9, 6)
        # Within the judged span's interval (a microsecond ending a microsecond before it does: backends that keep
        # microseconds, as Jaeger, round start and duration apart), whatever judging took: judging must never
        # stretch the trace's duration on the user's dashboards. The real moment is in the attributes above.
        span_end = int(body.get("end_unix_nano") or 0) or int(body.get("start_unix_nano") or 0) or ended
        span_start = int(body.get("start_unix_nano") or 0) or span_end
        end = max(span_start, span_end - EVALUATION_SPAN_NS)
        return JudgedSpan(first.trace_id, first.span_id, tuple(r.verdict.as_evaluation() for _, r in entries),
                          max(span_start, end - EVALUATION_SPAN_NS), end, str(body.get("response_id", "")),
                          attributes,
                          {r.verdict.metric: _result_attributes(r) for _, r in entries}, self._judge_version,
                          {PHOENIX_PROJECT: str(body["project"])} if body.get("project") else {})

    def _records(self, final: list[tuple[JudgeItem, CascadeVerdict]], sources: Mapping[int, str]) -> list[Decision]:
        """The decision record of each item (completed with them, saying where the judge's context came from),
        counting the verdicts."""
        records: list[Decision] = []
        for item, result in final:
            verdict = result.verdict
            decision = JUDGED if verdict.judged else f"{UNJUDGED}: {verdict.error_type}"
            detail: dict[str, object] = {"score": verdict.score, "label": verdict.label, "tier": verdict.tier,
                      "judge_model": verdict.judge_model, "judge_version": self._judge_version,
                      "judge_prompt_version": verdict.judge_prompt_version, "escalation": result.escalation,
                      "degraded": result.degraded, "cost_usd": verdict.cost_usd, "cached": verdict.cached,
                      "explanation": verdict.explanation[:300]}
            if sources.get(item.key):
                detail["context"] = sources[item.key]
            if verdict.redacted:  # what the judge server was not sent
                detail["redacted"] = dict(verdict.redacted)
            records.append(item_decision(item.trace_id, item.span_id, item.body, decision, item.metric,
                                         json.dumps(detail)))
            if self._quality is not None:
                self._quality.verdict(item.body, item.metric, result, item.trace_id, item.span_id)
            outcome = "judged" if verdict.judged else verdict.error_type
            self._metrics.verdicts.labels(verdict.tier or "none", item.metric, outcome).inc()
            if result.escalation:
                self._metrics.escalations.labels(result.escalation.split(":")[0]).inc()
            if verdict.cost_usd:
                self._metrics.cost_usd.labels(verdict.tier).inc(verdict.cost_usd)
            if verdict.cached:
                self._metrics.cache_hits.labels(verdict.tier).inc()
        return records

    def _update_state(self) -> None:
        """Gauges, and (judging in the receiving process) the sampler's rate scale."""
        for tier, gate in self._judges.gates.items():
            self._metrics.tier_paused.labels(tier).set(1 if gate.paused else 0)
            self._metrics.spent_usd.labels(tier).set(gate.spent_usd)
        self._metrics.waiting.set(self._queue.waiting())
        if self._scale is not None:
            set_budget_scale(self._scale, self._judges.gates)


def set_budget_scale(scale: RateScale, gates: Mapping[str, TierGate]) -> None:
    """The sampler's rate scale: down in proportion once a tier's daily budget is nearly spent (the ledger is
    shared, so a process that does not judge sees the spend of those that do)."""
    value, reason = 1.0, ""
    for tier, gate in gates.items():
        left, low = gate.budget_left_fraction, gate.low_budget_fraction
        if low and left < low and max(MIN_SCALE, left / low) < value:
            value = max(MIN_SCALE, left / low)
            reason = f"judge tier {tier} has {left:.0%} of its daily budget left"
    if abs(value - scale.value) > 1e-9:
        log.warning("sampling at %.0f%% of the configured rates: %s", value * 100, reason or "budget restored")
    scale.set(value, reason)


def _grounding(item: JudgeItem, documents: Sequence[Document]) -> tuple[str, str]:
    """The judge's context for an item, and where it came from: the documents on the span and those its trace's
    retriever spans returned before it; failing those, grounding the prompt itself holds."""
    body = item.body
    context = context_for(body.get("documents", ()), documents, body.get("start_unix_nano", 0))
    if context:
        return context, "retrieved documents"
    if body.get("prompt_context"):
        return str(body["prompt_context"]), f"prompt: {body.get('prompt_context_from', '')}"
    return "", ""


def _rfc3339(unix_nano: int) -> str:
    return datetime.datetime.fromtimestamp(unix_nano / 1e9, datetime.UTC).isoformat(timespec="milliseconds")


def _result_attributes(result: CascadeVerdict) -> dict[str, Plain]:
    verdict = result.verdict
    attributes: dict[str, Plain] = {"tracejudge.tier": verdict.tier, "tracejudge.judge.model": verdict.judge_model,
                                    "tracejudge.judge.prompt_version": verdict.judge_prompt_version,
                                    "tracejudge.confidence": verdict.confidence,
                                    "tracejudge.cost_usd": verdict.cost_usd}
    if result.escalation:
        attributes["tracejudge.escalation"] = result.escalation
    if result.degraded:
        attributes["tracejudge.degraded"] = result.degraded
    if verdict.cached:
        attributes["tracejudge.cached"] = True
    return attributes
