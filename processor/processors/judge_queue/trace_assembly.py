"""Trace assembly for judging: hold a trace's sampled LLM spans until the trace has finished arriving, and keep the
documents its retriever spans returned as their context.

Like the Collector's tail-sampling processor, a trace counts as complete once its root span has been seen and no
span of it has arrived for `decision_wait`; a trace whose root never shows is judged after `max_decision_wait`.
Items wait in the durable judge queue (`ready_unix_s`), not in memory. What is in memory is bounded: root sightings
and documents of traces that have nothing queued yet (a retriever span often arrives before its LLM span), each
kept for at most `max_traces` traces, least recently seen forgotten first.

With a `shared` queue (several instances, any span at any of them) every retriever span's documents are committed
at once, so that an LLM span another instance receives finds them; root sightings stay per instance, so an item
whose root span reached another instance waits `max_decision_wait`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from tracejudge.judge.queue import Document
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.llm_span import Retrieval

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Arrival:
    """What one batch means for the judge queue."""

    documents: list[Document]  # to commit with this batch's items
    holds: dict[str, float]  # trace id → new ready time for items already queued


class TraceAssembly:
    def __init__(self, decision_wait_s: float, max_decision_wait_s: float, max_traces: int = 100_000,
                 shared: bool = False) -> None:
        self._shared = shared
        self._wait_s = decision_wait_s
        self._max_wait_s = max_decision_wait_s
        self._max_traces = max_traces
        self._roots: collections.OrderedDict[str, float] = collections.OrderedDict()  # trace → root seen at
        self._documents: collections.OrderedDict[str, list[Retrieval]] = collections.OrderedDict()
        self._waiting: dict[str, float] = {}  # traces with queued items → when the first was queued

    def ready_at(self, trace_id: str, now: float) -> float:
        """When a newly sampled span of this trace may be judged."""
        first = self._waiting.setdefault(trace_id, now)
        if trace_id in self._roots:
            return min(now + self._wait_s, first + self._max_wait_s)
        return first + self._max_wait_s

    def arrive(self, batch: TraceBatch, sampled_traces: Iterable[str], now: float,
               kept_traces: Iterable[str] = ()) -> Arrival:
        """Note the batch's roots and retrievals; return the documents to commit (those of traces sampled now or
        earlier, and of `kept_traces`, whose unsampled spans are kept for feedback) and the queued traces whose wait
        starts again because more of them arrived."""
        self._forget_waiting(now)
        seen: set[str] = set()  # traces of this batch that matter: those with a root here or items queued
        for resource_spans in batch.request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if not span.parent_span_id:
                        trace = span.trace_id.hex()
                        _remember(self._roots, trace, now, self._max_traces)
                        seen.add(trace)
                    elif self._waiting and (trace := span.trace_id.hex()) in self._waiting:
                        seen.add(trace)
        holds = {trace: min(now + self._wait_s, first + self._max_wait_s)
                 for trace, first in self._waiting.items() if trace in seen and trace in self._roots}
        for retrieval in batch.retrievals:
            _remember(self._documents, retrieval.trace_id, [*self._documents.get(retrieval.trace_id, []), retrieval],
                      self._max_traces)
        shared = {r.trace_id for r in batch.retrievals} if self._shared else set()
        sampled = set(sampled_traces)
        for trace in sampled:
            self._waiting.setdefault(trace, now)
        documents: list[Document] = []
        for trace in {*sampled, *kept_traces, *shared,
                      *(r.trace_id for r in batch.retrievals if r.trace_id in self._waiting)}:
            for retrieval in self._documents.pop(trace, []):
                documents += [Document(trace, retrieval.span_id, position, retrieval.start_unix_nano, content)
                              for position, content in enumerate(retrieval.documents)]
        return Arrival(documents, holds)

    def _forget_waiting(self, now: float) -> None:
        """Traces past their longest wait are ready whatever arrives: stop tracking them."""
        expired = [trace for trace, first in self._waiting.items() if now - first > self._max_wait_s]
        for trace in expired:
            del self._waiting[trace]


def _remember(table: collections.OrderedDict[str, T], key: str, value: T, limit: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


def context_for(own: Iterable[str], documents: Iterable[Document], start_unix_nano: int,
                limit_chars: int = 256 * 1024) -> str:
    """An LLM span's context: the documents on the span itself, then those retrieved in its trace before it
    started, each once; at most `limit_chars` of them (a judge reads the beginning of a longer context)."""
    texts = list(dict.fromkeys([*own, *(d.content for d in documents if d.start_unix_nano <= start_unix_nano)]))
    return "\n\n".join(texts)[:limit_chars]
