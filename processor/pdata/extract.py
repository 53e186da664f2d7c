"""Finds the LLM spans in an OTLP trace export request and normalises each into an LlmSpan.

Recognises OTel GenAI, OpenInference, OpenLLMetry and Langfuse spans (see conventions.py) and a configured
`attributes:` map. Pure: it reads the request and never mutates it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracejudge.processor.component.decisions import SpanFault
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata.conventions import CONVENTIONS, as_int, as_text, as_texts, classify
from tracejudge.processor.pdata.llm_span import AttributeValue, LlmSpan, Retrieval
from tracejudge.processor.pdata.otlp_wire import spans_containing

from . import conventions as cv

__all__ = ["CONVENTIONS", "LLM_MARKERS", "AttributeMap", "Extractor", "may_contain_llm", "plain_attributes",
           "plain_value"]

LLM_MARKERS: tuple[bytes, ...] = tuple(marker.encode() for marker in cv.MARKERS)

_STATUS = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}


def may_contain_llm(payload: bytes, markers: tuple[bytes, ...] = LLM_MARKERS) -> bool:
    """False only if no span of this serialized request can be an LLM span; pass `Extractor.markers` if custom."""
    return any(marker in payload for marker in markers)


class Extracted(NamedTuple):
    llm_spans: tuple[LlmSpan, ...]
    retrievals: tuple[Retrieval, ...]
    unprocessable: tuple[SpanFault, ...]


@dataclass(frozen=True, slots=True)
class AttributeMap:
    """The config `attributes:` map, field -> attribute key (`prompt_version: app.prompt.sha`).

    A mapped attribute, found on the span or else its resource, overrides what the conventions gave; `input` and
    `output` may hold plain text or JSON messages. A span that no convention describes is an LLM span ("custom")
    if it has the mapped attribute of an IDENTIFYING field.
    """

    FIELDS: ClassVar[tuple[str, ...]] = (
        "operation", "provider", "request_model", "response_model", "response_id", "model_fingerprint",
        "prompt_name", "prompt_version", "conversation_id", "service", "input", "output",
        "input_tokens", "output_tokens",
    )  # fmt: skip
    IDENTIFYING: ClassVar[tuple[str, ...]] = ("operation", "request_model", "response_model", "input", "output")

    keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def validate(self, path: str) -> None:
        problems = []
        for name, key in self.keys.items():
            if name not in self.FIELDS:
                problems.append(f"{path}.{name}: unknown field (known: {', '.join(self.FIELDS)})")
            elif not isinstance(key, str) or not key:
                problems.append(f"{path}.{name}: must be the name of a span or resource attribute")
        if problems:
            raise ConfigError(problems)

    @property
    def identifying_keys(self) -> frozenset[str]:
        return frozenset(key for name, key in self.keys.items() if name in self.IDENTIFYING)


class Extractor:
    """Turns a request into the LlmSpan records of its LLM spans, in request order."""

    def __init__(self, attributes: AttributeMap | None = None) -> None:
        self._map = attributes if attributes is not None else AttributeMap()
        self._map.validate("attributes")
        self._custom_keys = self._map.identifying_keys
        self._triggers = frozenset(cv.TRIGGER_KEYS) | self._custom_keys
        extra = sorted(k for k in self._custom_keys if not any(m in k for m in cv.MARKERS))
        self._markers = LLM_MARKERS + tuple(key.encode() for key in extra)

    @property
    def markers(self) -> tuple[bytes, ...]:
        """Byte strings at least one of which occurs in any request holding an LLM span (for may_contain_llm)."""
        return self._markers

    def extract(self, request: ExportTraceServiceRequest, payload: bytes | None = None) -> tuple[LlmSpan, ...]:
        """The LLM spans of `request`, which is only read. Given `payload` (the request serialized), only spans
        whose bytes hold a marker are looked at; otherwise spans of no convention cost a scan of their keys."""
        return self.extract_all(request, payload)[0]

    def extract_all(self, request: ExportTraceServiceRequest, payload: bytes | None = None) -> Extracted:
        """The LLM spans of `request`, its retriever spans (the context of LLM spans after them), and the spans
        that could not be read: a span whose attributes break extraction is left out, never its request."""
        marked = None if payload is None else self._marked_spans(payload)
        if marked is not None and not marked:
            return Extracted((), (), ())
        found: list[LlmSpan] = []
        retrievals: list[Retrieval] = []
        unprocessable: list[SpanFault] = []
        index = -1
        for resource_spans in request.resource_spans:
            resource: dict[str, object] | None = None
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    index += 1
                    if (marked is not None and index not in marked) or not self._is_candidate(span):
                        continue
                    try:
                        attrs = plain_attributes(span.attributes)
                        convention = classify(attrs, self._custom_keys)
                        if convention is None:
                            documents = cv.retrieved_documents(attrs)
                            if documents:
                                retrievals.append(Retrieval(span.trace_id.hex(), span.span_id.hex(),
                                                            span.start_time_unix_nano, documents))
                            continue
                        if resource is None:
                            resource = plain_attributes(resource_spans.resource.attributes)
                        found.append(self._record(span, convention, attrs, resource))
                    except Exception as error:  # values no convention foresaw (a map where text belongs, ...)
                        unprocessable.append(SpanFault.of(span.trace_id.hex(), span.span_id.hex(), error))
        return Extracted(tuple(found), tuple(retrievals), tuple(unprocessable))

    def _marked_spans(self, payload: bytes) -> set[int] | None:
        try:
            return spans_containing(payload, self._markers)
        except (ValueError, IndexError):  # framing we cannot follow: fall back to scanning every span's keys
            return None

    def _is_candidate(self, span: Span) -> bool:
        # Most spans are not LLM spans: look at keys only, build nothing.
        triggers = self._triggers
        for kv in span.attributes:  # noqa: SIM110 - measurably faster than any() on this hot path
            if kv.key in triggers:
                return True
        return False

    def _record(self, span: Span, convention: str, attrs: dict[str, object], resource: dict[str, object]) -> LlmSpan:
        merged = MappingProxyType({**resource, **attrs})
        fields = _convention_fields(span, attrs)
        fields["service"] = as_text(resource.get("service.name"))
        self._apply_map(fields, merged)
        return LlmSpan(
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            convention=convention,
            name=span.name,
            start_unix_nano=span.start_time_unix_nano,
            end_unix_nano=span.end_time_unix_nano,
            status=_STATUS.get(span.status.code, "unset"),
            status_message=span.status.message,
            attributes=merged,
            **fields,
        )

    def _apply_map(self, fields: dict[str, Any], merged: Mapping[str, object]) -> None:
        for name, key in self._map.keys.items():
            if key not in merged:
                continue
            value = merged[key]
            if name in ("input", "output"):
                messages, _ = cv.messages(value, "user" if name == "input" else "assistant", free_form=True)
                if messages:
                    fields[f"{name}_messages"] = tuple(messages)
            elif name in cv.TOKEN_KEYS:
                tokens = as_int(value)
                fields[name] = fields[name] if tokens is None else tokens
            else:
                fields[name] = as_text(value) or fields[name]


def _convention_fields(span: Span, attrs: Mapping[str, object]) -> dict[str, Any]:
    """Every LlmSpan field the conventions define, each from the first key present in preference order."""
    fields: dict[str, Any] = {name: _first_text(attrs, keys) for name, keys in cv.STRING_KEYS.items()}
    for name, keys in cv.TOKEN_KEYS.items():
        fields[name] = next((as_int(attrs[k]) for k in keys if k in attrs), None)
    if not fields["operation"]:
        fields["operation"] = cv.OPENLLMETRY_OPERATIONS.get(as_text(attrs.get("llm.request.type")), "")
    _fill_from_payloads(fields, attrs)
    content, source = _content(span, attrs)
    fields["input_messages"] = content.inputs
    fields["output_messages"] = content.outputs
    fields["content_source"] = source if any(m.content for m in content.outputs) else ""
    declared = next((attrs[k] for k in cv.FINISH_REASON_KEYS if k in attrs), None)
    fields["finish_reasons"] = as_texts(declared) or content.finish_reasons
    fields["documents"] = cv.indexed_documents(attrs)
    return fields


def _fill_from_payloads(fields: dict[str, Any], attrs: Mapping[str, object]) -> None:
    """Fields some conventions leave inside JSON payloads: OpenInference's parameters and response, Langfuse usage."""
    parameters = _json_object(attrs.get(cv.OPENINFERENCE_PARAMETERS))
    response = _json_object(attrs.get("output.value"))
    usage = _json_object(attrs.get(cv.LANGFUSE_USAGE))
    fields["request_model"] = fields["request_model"] or as_text(parameters.get("model"))
    if "choices" in response:  # an OpenAI-style response body
        fields["response_id"] = fields["response_id"] or as_text(response.get("id"))
        fields["model_fingerprint"] = fields["model_fingerprint"] or as_text(response.get("system_fingerprint"))
        fields["response_model"] = fields["response_model"] or as_text(response.get("model"))
    for name, keys in cv.LANGFUSE_USAGE_KEYS.items():
        if fields[name] is None:
            fields[name] = next((as_int(usage[k]) for k in keys if k in usage), None)


def _content(span: Span, attrs: Mapping[str, object]) -> tuple[cv.Content, str]:
    """Content from the attributes; what they lack, from span events (read only then: they are rarely needed);
    and where the output came from."""
    content = cv.attribute_content(attrs)
    if (content.inputs and content.outputs) or not len(span.events):
        return content, "span attributes"
    events = cv.event_content(
        (event.name, plain_attributes(event.attributes)) for event in span.events if event.name.startswith("gen_ai.")
    )
    inputs = content.inputs or events.inputs
    if content.outputs:
        return cv.Content(inputs, content.outputs, content.finish_reasons), "span attributes"
    return cv.Content(inputs, events.outputs, events.finish_reasons), "span events"


def _first_text(attrs: Mapping[str, object], keys: Iterable[str]) -> str:
    for key in keys:
        text = as_text(attrs.get(key))
        if text and text != cv.REDACTED:
            return text
    return ""


def _json_object(value: object) -> Mapping[str, object]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.startswith("{"):
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def plain_attributes(attributes: Iterable[KeyValue]) -> dict[str, object]:
    return {kv.key: plain_value(kv.value) for kv in attributes}


def plain_value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(plain_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None
