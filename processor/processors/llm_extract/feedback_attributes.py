"""Feedback that arrives inside traces: span attributes an app sets (thumbs, rating, regenerated, an edit, a comment)
on the LLM span itself or on a span of its own. A span with links gives feedback on the first linked span (an app
recording a thumbs-down minutes later, in a new trace, links it to the answer's span); otherwise on its own trace.

The attribute names are configurable (`llm_extract.feedback`); a request without any of them costs one byte scan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.sqlite import MAX_INTEGER
from tracejudge.processor.pdata.conventions import as_text
from tracejudge.processor.pdata.extract import plain_attributes
from tracejudge.processor.pdata.feedback import Feedback, problems

_UP = frozenset({"up", "+1", "1", "true", "thumbs_up", "positive", "like"})
_DOWN = frozenset({"down", "-1", "false", "thumbs_down", "negative", "dislike"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackAttributes:
    """Span attribute names that carry feedback; an empty name turns that field off."""

    thumbs: str = "tracejudge.feedback.thumbs"  # up/down, +1/-1, true/false
    rating: str = "tracejudge.feedback.rating"  # a number from 0 to rating_max
    rating_max: float = 5.0
    regenerated: str = "tracejudge.feedback.regenerated"  # true: the user asked for another answer
    edited_text: str = "tracejudge.feedback.edited_text"  # the user's corrected answer
    comment: str = "tracejudge.feedback.comment"
    source: str = "tracejudge.feedback.source"  # who gave it (user, reviewer, an app name)

    def validate(self, path: str) -> None:
        if self.rating_max <= 0:
            raise ConfigError(f"{path}.rating_max: must be positive")
        if not any(self.keys):
            raise ConfigError(f"{path}: every attribute name is empty; leave the section out for the defaults")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.thumbs, self.rating, self.regenerated, self.edited_text, self.comment) if k)


class FeedbackReader:
    def __init__(self, attributes: FeedbackAttributes) -> None:
        self._names = attributes
        self._keys = frozenset(attributes.keys)
        prefix = _common_prefix(attributes.keys)
        self._markers = (prefix.encode(),) if len(prefix) >= 8 else tuple(k.encode() for k in attributes.keys)

    def read(self, request: ExportTraceServiceRequest, payload: bytes) -> tuple[Feedback, ...]:
        """The feedback in a request; spans whose values make no sense are skipped (their spans still flow)."""
        if not any(marker in payload for marker in self._markers):
            return ()
        found = []
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if not any(kv.key in self._keys for kv in span.attributes):
                        continue
                    if span.links:
                        trace, target = span.links[0].trace_id.hex(), span.links[0].span_id.hex()
                    else:
                        trace, target = span.trace_id.hex(), span.span_id.hex()
                    try:
                        values = plain_attributes(span.attributes)
                        record = self._record(values, trace, target, min(span.end_time_unix_nano, MAX_INTEGER))
                    except Exception:  # values no app sends on purpose: the span flows, its feedback is not taken
                        log.debug("feedback attributes of span %s/%s not readable", trace, target, exc_info=True)
                        continue
                    if record is not None and not problems(record, "span"):
                        found.append(record.identified())
        return tuple(found)

    def _record(self, values: dict[str, object], trace_id: str, span_id: str, time_unix_nano: int) -> Feedback | None:
        names = self._names
        thumbs = _thumbs(values.get(names.thumbs)) if names.thumbs else 0
        rating = _number(values.get(names.rating)) if names.rating else None
        if rating is not None:
            rating = rating / names.rating_max
        return Feedback(trace_id=trace_id, span_id=span_id, time_unix_nano=time_unix_nano, thumbs=thumbs or 0,
                        rating=rating, regenerated=as_text(values.get(names.regenerated)).lower() == "true",
                        edited_text=as_text(values.get(names.edited_text)), comment=as_text(values.get(names.comment)),
                        source=as_text(values.get(names.source)) or "span")


def _thumbs(value: object) -> int | None:
    text = as_text(value).strip().lower()
    return 1 if text in _UP else -1 if text in _DOWN else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _common_prefix(keys: Iterable[str]) -> str:
    keys = list(keys)
    if not keys:
        return ""
    first, last = min(keys), max(keys)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    return first[:size]
