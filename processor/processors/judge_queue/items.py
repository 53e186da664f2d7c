"""What a judge queue item keeps of its span: everything a judge needs, and what makes its score attributable and
weightable; and the decision record of an item, from its body."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tracejudge.processor.component.decisions import Decision
from tracejudge.processor.pdata.evaluation_events import PHOENIX_PROJECT
from tracejudge.processor.pdata.sample import Sample, SamplingDecision


def decision_fields(decision: SamplingDecision) -> dict[str, Any]:
    return {"probability": decision.probability, "stratum": decision.stratum, "in_uniform": decision.in_uniform}


def item_body(sample: Sample, route: str) -> dict[str, Any]:
    """What a judge needs, and what makes its score attributable and weightable."""
    span, decision = sample.span, sample.decision
    return {
        "service": span.service, "convention": span.convention, "operation": span.operation,
        "request_model": span.request_model, "response_model": span.response_model,
        "model_fingerprint": span.model_fingerprint, "prompt_name": span.prompt_name,
        "prompt_version": span.prompt_version, "response_id": span.response_id,
        "start_unix_nano": span.start_unix_nano, "end_unix_nano": span.end_unix_nano,
        "input_tokens": span.input_tokens, "output_tokens": span.output_tokens,
        "query": span.input_text, "question": span.question, "response": span.output_text,
        "documents": list(span.documents),
        **decision_fields(decision), "route": route, "project": str(span.attributes.get(PHOENIX_PROJECT) or ""),
    }  # fmt: skip


def item_decision(trace_id: str, span_id: str, body: Mapping[str, Any], decision: str, metric: str = "",
                  detail: str = "") -> Decision:
    """A record for a judge queue item, from what its body keeps of the span."""
    return Decision(trace_id, span_id, decision, body.get("service", ""), body.get("convention", ""),
                    body.get("response_model") or body.get("request_model", ""), body.get("prompt_version", ""),
                    time.time(), metric, detail)
