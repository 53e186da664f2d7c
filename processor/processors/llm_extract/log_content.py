"""LLM content that instrumentations put in log records instead of on the span, joined to its LLM span by trace
and span id, whichever arrives first.

Read: GenAI events, by the record's `event_name` (or, from older SDKs, its `event.name` attribute) —
`gen_ai.client.inference.operation.details` (gen_ai.input.messages / gen_ai.output.messages / gen_ai.system_instructions
attributes: opentelemetry-instrumentation-openai-v2 and the other opentelemetry-util-genai users in EVENT_ONLY and
SPAN_AND_EVENT modes) and the per-message events `gen_ai.<role>.message` and `gen_ai.choice` (content in the
body: OpenLLMetry with `use_attributes=False`, older openai-v2 releases). OpenInference writes no log records.

Bounded like trace assembly: a span waits at most `wait` for its content and content at most `wait` for its span,
at most `max_spans` of each, content at most `max_mib` in all; the oldest go first. Held in memory: a crash forgets
what is waiting (the spans and records themselves were forwarded).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata import conventions as cv
from tracejudge.processor.pdata.extract import plain_attributes, plain_value
from tracejudge.processor.pdata.llm_span import LlmSpan

OPERATION_DETAILS = "gen_ai.client.inference.operation.details"
EVENT_MARKER = b"gen_ai."  # in the bytes of every logs request that holds a GenAI event
_BODY = cv.EVENT_CONTENT_KEYS[0]  # where a record's body goes among its attributes, for cv.event_content

Key = tuple[str, str]  # (trace id, span id), hex


@dataclass(frozen=True)
class LogContentConfig:
    """`llm_extract.log_content`: the join of LLM spans with content from log records (when a logs pipeline shares
    a receiver with the traces pipeline)."""

    wait: Duration = 30.0  # as judge_queue's max_decision_wait: the longest a trace is held for judging
    max_spans: int = 100_000  # spans waiting for content, and spans' content waiting for them, each
    max_mib: int = 64  # content waiting for its span

    def validate(self, path: str) -> None:
        problems = [f"{path}.{name}: must be at least 1" for name in ("max_spans", "max_mib")
                    if getattr(self, name) < 1]
        if self.wait <= 0:
            problems.append(f"{path}.wait: must be positive")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True, slots=True)
class Event:
    """One GenAI log record, as event name and attributes (its body among them), and what identifies it: a client
    that retries a refused request sends the same record again, which must not add its messages twice."""

    name: str
    attributes: dict[str, object]
    identity: bytes
    size_bytes: int


@dataclass(slots=True)
class _Held:
    events: list[Event] = field(default_factory=list)
    since: float = 0.0

    @property
    def size_bytes(self) -> int:
        return sum(event.size_bytes for event in self.events)


def read_events(request: ExportLogsServiceRequest) -> dict[Key, list[Event]]:
    """The GenAI events of a logs request that name a span, by (trace id, span id), in record order."""
    found: dict[Key, list[Event]] = {}
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                if len(record.span_id) != 8 or len(record.trace_id) != 16:
                    continue
                name = _event_name(record)
                if not name.startswith("gen_ai."):
                    continue
                attributes = plain_attributes(record.attributes)
                if record.HasField("body"):
                    attributes[_BODY] = plain_value(record.body)
                raw = record.SerializeToString()
                event = Event(name, attributes, hashlib.blake2b(raw, digest_size=16).digest(), len(raw))
                found.setdefault((record.trace_id.hex(), record.span_id.hex()), []).append(event)
    return found


def _event_name(record: LogRecord) -> str:
    if record.event_name:
        return record.event_name
    return next((kv.value.string_value for kv in record.attributes if kv.key == "event.name"), "")


def completed(span: LlmSpan, events: Iterable[Event]) -> LlmSpan | None:
    """`span` with the content of `events`, or None while they hold no output (the answer is what is judged)."""
    events = list(events)
    details = [event for event in events if event.name == OPERATION_DETAILS]
    content = (cv.attribute_content(details[-1].attributes) if details
               else cv.event_content((event.name, event.attributes) for event in events))
    if not any(message.content for message in content.outputs):
        return None
    names = ", ".join(dict.fromkeys(event.name for event in events))
    return dataclasses.replace(
        span, input_messages=span.input_messages or content.inputs, output_messages=content.outputs,
        finish_reasons=span.finish_reasons or content.finish_reasons, content_source=f"log events ({names})")


class ContentJoin:
    """Spans without content meet the content that log records carry for them. Every method takes the time now
    (monotonic seconds); none blocks."""

    def __init__(self, config: LogContentConfig) -> None:
        self._wait_s = config.wait
        self._max_spans = config.max_spans
        self._max_bytes = config.max_mib * 1024 * 1024
        self._content: collections.OrderedDict[Key, _Held] = collections.OrderedDict()
        self._content_bytes = 0
        self._waiting: collections.OrderedDict[Key, tuple[LlmSpan, float]] = collections.OrderedDict()
        # spans that had content of their own or were completed: what arrives for them later is not kept
        self._settled: collections.OrderedDict[Key, float] = collections.OrderedDict()
        self._given_up: list[tuple[LlmSpan, str]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def peek(self, span: LlmSpan) -> LlmSpan | None:
        """A span without content, completed with what arrived before it; None if nothing (complete) did. Changes
        nothing: `settle` the span once its request is accepted."""
        held = self._content.get((span.trace_id, span.span_id))
        return None if held is None else completed(span, held.events)

    def span_arrived(self, span: LlmSpan, now: float) -> LlmSpan | None:
        """A span without content: completed with what arrived before it, or None (it waits, from now)."""
        key = (span.trace_id, span.span_id)
        held = self._content.get(key)
        if held is not None and (done := completed(span, held.events)) is not None:
            self._drop_content(key)
            self.settle(key, now)
            return done
        self._waiting[key] = (span, now)
        self._waiting.move_to_end(key)
        while len(self._waiting) > self._max_spans:
            _, (oldest, _) = self._waiting.popitem(last=False)
            self._given_up.append((oldest, f"more than {self._max_spans} spans waited for content (max_spans)"))
        return None

    def settle(self, key: Key, now: float) -> None:
        """The span has its content: drop what is held for it, and what arrives for it from now on."""
        self._drop_content(key)
        self._settled[key] = now
        self._settled.move_to_end(key)
        while len(self._settled) > self._max_spans:
            self._settled.popitem(last=False)

    def content_arrived(self, events: dict[Key, list[Event]], now: float) -> list[tuple[LlmSpan, LlmSpan]]:
        """Takes the events of a logs request; returns the waiting spans they complete (no longer waiting), each
        as it waited and as completed."""
        done = []
        for key, incoming in events.items():
            if key in self._settled:
                continue
            held = self._content.get(key)
            if held is None:
                held = self._content[key] = _Held(since=now)
            known = {event.identity for event in held.events}
            fresh = [event for event in incoming if event.identity not in known]
            held.events += fresh
            self._content_bytes += sum(event.size_bytes for event in fresh)
            waiting = self._waiting.get(key)
            if waiting is not None and (span := completed(waiting[0], held.events)) is not None:
                del self._waiting[key]
                self.settle(key, now)
                done.append((waiting[0], span))
        self._bound_content()
        return done

    def wait_again(self, spans: Iterable[LlmSpan], now: float) -> None:
        """Spans (as they waited) that `content_arrived` completed but could not be handed on, as the logs request
        was refused: they wait again, and the client's retry brings their content again."""
        for span in spans:
            key = (span.trace_id, span.span_id)
            self._settled.pop(key, None)
            self._waiting[key] = (span, now)

    def expired(self, now: float) -> Iterator[tuple[LlmSpan, str]]:
        """Spans that stop waiting without content (their wait is over, or too many waited), with why; content
        older than the wait is forgotten. `now` = inf: every waiting span (at shutdown)."""
        given_up, self._given_up = self._given_up, []
        yield from given_up
        while self._waiting:
            key, (span, since) = next(iter(self._waiting.items()))
            if now - since <= self._wait_s:
                break
            del self._waiting[key]
            yield span, (f"no log record carried its content within {self._wait_s:g} s" if now != float("inf")
                         else "tracejudge stopped while it waited for log records carrying its content")
        while self._content and now - next(iter(self._content.values())).since > self._wait_s:
            self._drop_content(next(iter(self._content)))
        while self._settled and now - next(iter(self._settled.values())) > self._wait_s:
            self._settled.popitem(last=False)

    def _bound_content(self) -> None:
        while self._content and (len(self._content) > self._max_spans or self._content_bytes > self._max_bytes):
            self._drop_content(next(iter(self._content)))

    def _drop_content(self, key: Key) -> None:
        held = self._content.pop(key, None)
        if held is not None:
            self._content_bytes -= held.size_bytes
