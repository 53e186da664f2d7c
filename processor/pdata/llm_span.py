"""The normalised record of one LLM call, whatever convention its instrumentation used."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tracejudge.processor.component.decisions import AWAITING_CONTENT, EXTRACTED, NO_CONTENT, Decision

# An OTLP attribute value as plain Python: str, bool, int, float, bytes, or a tuple/dict of those.
AttributeValue = object

NO_ATTRIBUTES: Mapping[str, AttributeValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class LlmSpan:
    """One LLM span. Ids are lowercase hex; text fields are "" and counts None when the span lacks them."""

    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    convention: str  # gen_ai | openinference | openllmetry | langfuse | custom
    name: str = ""
    operation: str = ""  # chat, text_completion, embeddings, ...
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    model_fingerprint: str = ""  # the provider's system_fingerprint: changes when the model behind a name does
    response_id: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    input_messages: tuple[Message, ...] = ()
    output_messages: tuple[Message, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    start_unix_nano: int = 0
    end_unix_nano: int = 0
    status: str = "unset"  # unset | ok | error
    status_message: str = ""
    finish_reasons: tuple[str, ...] = ()
    conversation_id: str = ""
    documents: tuple[str, ...] = ()  # retrieved documents carried on this span
    # where the output came from: span attributes, span events, or log events (...) joined to the span
    content_source: str = ""
    # span attributes over resource attributes, as plain values, for sampling rules
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: NO_ATTRIBUTES)

    @property
    def input_text(self) -> str:
        return "\n".join(m.content for m in self.input_messages if m.content)

    @property
    def question(self) -> str:
        """The last user message: what was asked, without the system prompt (else the whole input)."""
        asked = [m.content for m in self.input_messages if m.role == "user" and m.content]
        return asked[-1] if asked else self.input_text

    @property
    def output_text(self) -> str:
        return "\n".join(m.content for m in self.output_messages if m.content)

    @property
    def has_content(self) -> bool:
        """False when content capture was off: the span still counts for latency, cost and versions."""
        return any(m.content for m in self.output_messages)

    @property
    def latency_s(self) -> float:
        return max(0, self.end_unix_nano - self.start_unix_nano) / 1e9


@dataclass(frozen=True, slots=True)
class Retrieval:
    """A retriever span (OpenInference RETRIEVER, GenAI `retrieval`): documents that LLM spans later in the same
    trace may have been given as context."""

    trace_id: str
    span_id: str
    start_unix_nano: int
    documents: tuple[str, ...]


def extraction_decision(span: LlmSpan, waits: bool = False, detail: str = "") -> Decision:
    """The first record of every LLM span: extracted (and where its content came from), awaiting content from log
    records, or not judgeable for want of content."""
    if span.has_content:
        return span_decision(span, EXTRACTED, detail=json.dumps({"content": span.content_source}))
    return span_decision(span, AWAITING_CONTENT if waits else NO_CONTENT, detail=detail)


def span_decision(span: LlmSpan, decision: str, metric: str = "", detail: str = "") -> Decision:
    return Decision(span.trace_id, span.span_id, decision, span.service, span.convention,
                    span.response_model or span.request_model, span.prompt_version, time.time(), metric, detail)
