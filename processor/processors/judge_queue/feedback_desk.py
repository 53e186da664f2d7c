"""Where a judge stage takes feedback (from the EvalService and from span attributes): stored with its statistics,
and the traces it is negative about judged — their LLM spans kept unsampled now, or those still to arrive when
they do (FeedbackTrigger)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

from tracejudge.judge.queue import JudgeQueueStore, NewItem
from tracejudge.processor.component.decisions import QUEUED
from tracejudge.processor.component.errors import StorageError
from tracejudge.processor.pdata.feedback import Feedback, FeedbackReceipt
from tracejudge.processor.processors.judge_queue.feedback_trigger import NOT_SAMPLED, FeedbackTrigger, triggered
from tracejudge.processor.processors.judge_queue.items import ItemWriter, decision_fields, item_decision
from tracejudge.stats.records import Alert, Evaluation
from tracejudge.stats.store import Store


class FeedbackDesk:
    """Runs on the event loop, like the stage that owns it; every call is one or two short transactions."""

    def __init__(self, queue: JudgeQueueStore, writer: ItemWriter, store: Store, trigger: FeedbackTrigger,
                 metrics: Sequence[str], clock: Callable[[], float]) -> None:
        self._queue = queue
        self._writer = writer
        self._store = store
        self._trigger = trigger
        self._metrics = metrics
        self._clock = clock

    def feedback(self, records: Sequence[Feedback]) -> FeedbackReceipt:
        """Store feedback (validated by the caller; given no time, it is stamped now) and queue the LLM spans of
        the traces it is negative about. Repeating feedback stores nothing again and queues only what is not
        queued yet (a retry after a failure)."""
        now = self._clock()
        stamped = [r if r.time_unix_nano else dataclasses.replace(r, time_unix_nano=int(now * 1e9))
                   for r in (record.identified() for record in records)]  # the id is taken before the stamp
        new = self._store.save_feedback(stamped)
        waiting = self._trigger.wait_for(stamped)
        negative = {record.trace_id: record.reason for record in stamped if record.negative}
        if not negative:
            return FeedbackReceipt(len(new), 0, 0)
        kept = self._queue.kept(negative)
        items = []
        for span in kept:
            body = {**span.body, **decision_fields(triggered(NOT_SAMPLED, negative[span.trace_id]))}
            items += [NewItem(span.span_id, span.trace_id, metric, body, now) for metric in self._metrics]
        result = self._writer.reserve(items)  # their spans were accepted with an earlier request: committed now
        away = {(item.span_id, item.metric) for item in result.turned_away}
        if items:
            self._queue.commit(items, displaced=result.displaced, decisions=(
                [item_decision(item.trace_id, item.span_id, item.body, QUEUED, item.metric,
                               json.dumps({"stratum": item.body["stratum"]}))
                 for item in items if (item.span_id, item.metric) not in away]
                + [item_decision(item.trace_id, item.span_id, item.body, self._writer.dropped, item.metric)
                   for item in result.turned_away]))
            self._writer.committed(result)
        known = {span.trace_id for span in kept} | self._queue.traces_with_items(negative)
        return FeedbackReceipt(len(new), result.inserted, len((set(negative) - known) & waiting))

    def from_spans(self, records: Sequence[Feedback]) -> None:
        """Feedback an app recorded in span attributes; the batch is refused as retryable if it cannot be stored
        (nothing of it is forwarded yet, so the client's retry does it all again)."""
        try:
            self.feedback(records)
        except StorageError as e:
            raise StorageError(f"the feedback in this request could not be stored ({e})") from e

    def trace_view(self, trace_id: str) -> tuple[list[Evaluation], list[Alert], list[Feedback]]:
        """What is recorded about one trace: its evaluations, the alerts linking to it, its feedback."""
        store = self._store
        return store.trace_evaluations(trace_id), store.alerts(trace_id), store.feedback(trace_id)
