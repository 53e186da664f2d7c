"""What a judge queue item keeps of its span (everything a judge needs, and what makes its score attributable and
weightable), the decision record of an item, and the one way items are committed and counted."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from tracejudge.judge.queue import Enqueued, JudgeQueueStore, NewItem
from tracejudge.processor.component.decisions import DROPPED, Decision
from tracejudge.processor.pdata.evaluation_events import PHOENIX_PROJECT
from tracejudge.processor.pdata.sample import Sample, SamplingDecision
from tracejudge.processor.processors.judge_queue.metrics import JudgeQueueMetrics
from tracejudge.processor.processors.judge_queue.prompt_context import DEFAULT_MARKERS, prompt_context


def decision_fields(decision: SamplingDecision) -> dict[str, Any]:
    return {"probability": decision.probability, "stratum": decision.stratum, "in_uniform": decision.in_uniform}


# What a judge reads of one span: the beginning of each text, and of the retrieved context. A judge's memory and time
# grow with its input (an 18 MB answer once took the embedded judge to 3 GB); what is cut is recorded.
MAX_TEXT_CHARS = 64 * 1024
MAX_CONTEXT_CHARS = 256 * 1024




def capped_documents(documents: Sequence[str], limit: int = MAX_CONTEXT_CHARS) -> list[str]:
    kept, room = [], limit
    for document in documents:
        if room <= 0:
            break
        kept.append(document[:room])
        room -= len(document)
    return kept


def item_body(sample: Sample, route: str, context_markers: Sequence[str] = DEFAULT_MARKERS) -> dict[str, Any]:
    """What a judge needs (each text up to its cap), and what makes its score attributable and weightable."""
    span, decision = sample.span, sample.decision
    query, response = span.input_text, span.output_text
    grounding, grounding_from = prompt_context(span.input_messages, context_markers)
    # what a judge reads only the beginning of, with full lengths in characters
    cut = {name: len(text) for name, text in (("query", query), ("response", response)) if len(text) > MAX_TEXT_CHARS}
    if (context := sum(len(d) for d in span.documents)) > MAX_CONTEXT_CHARS:
        cut["documents"] = context
    return {
        "service": span.service, "convention": span.convention, "operation": span.operation,
        "request_model": span.request_model, "response_model": span.response_model,
        "model_fingerprint": span.model_fingerprint, "prompt_name": span.prompt_name,
        "prompt_version": span.prompt_version, "response_id": span.response_id,
        "start_unix_nano": span.start_unix_nano, "end_unix_nano": span.end_unix_nano,
        "input_tokens": span.input_tokens, "output_tokens": span.output_tokens,
        "query": query[:MAX_TEXT_CHARS], "question": span.question[:MAX_TEXT_CHARS],
        "response": response[:MAX_TEXT_CHARS], "documents": capped_documents(span.documents),
        **({"prompt_context": grounding[:MAX_CONTEXT_CHARS], "prompt_context_from": grounding_from}
           if grounding else {}),
        **decision_fields(decision), "route": route, "project": str(span.attributes.get(PHOENIX_PROJECT) or ""),
        **({"truncated": cut} if cut else {}),
    }  # fmt: skip


def item_decision(trace_id: str, span_id: str, body: Mapping[str, Any], decision: str, metric: str = "",
                  detail: str = "") -> Decision:
    """A record for a judge queue item, from what its body keeps of the span."""
    return Decision(trace_id, span_id, decision, body.get("service", ""), body.get("convention", ""),
                    body.get("response_model") or body.get("request_model", ""), body.get("prompt_version", ""),
                    time.time(), metric, detail)


class ItemWriter:
    """Reserves items in the judge queue and, once they are committed, counts what went in and what the full queue
    turned away."""

    def __init__(self, queue: JudgeQueueStore, metrics: JudgeQueueMetrics, when_full: str) -> None:
        self._queue = queue
        self._enqueued = metrics.enqueued
        self._dropped = metrics.dropped.labels(when_full)
        self.dropped = f"{DROPPED}: judge queue full ({when_full})"  # the decision of a turned-away item

    def reserve(self, items: Sequence[NewItem]) -> Enqueued:
        """Items held for a request until it is accepted (queue.commit, then `committed`) or refused
        (queue.cancel)."""
        return self._queue.reserve(items)

    def committed(self, result: Enqueued) -> None:
        self._enqueued.inc(result.inserted)
        self._dropped.inc(len(result.turned_away))
