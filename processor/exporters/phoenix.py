"""The `phoenix` exporter: evaluation results in traces become Arize Phoenix span annotations.

Phoenix shows annotations, not span events. Spans reach Phoenix through an `otlphttp` exporter; this one POSTs, for
each `gen_ai.evaluation.result` event, one annotation to `/v1/span_annotations?sync=true`:
- on an evaluation span (`tracejudge.evaluation` from service `tracejudge`): an LLM annotation on its parent, the
  judged span, identified by the judge version (`tracejudge.judge.version`);
- on any other span (deterministic checks written on the LLM span itself): a CODE annotation on that span,
  identified as "checks".
Phoenix upserts on (name, span, identifier), so posting a request again (at-least-once delivery) updates in place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, PermanentError, RetryableError
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.exporters.helper.queued import ExporterSettings, queued_exporter
from tracejudge.processor.exporters.helper.retry import parse_retry_after
from tracejudge.processor.exporters.helper.self_tracing import suppressed
from tracejudge.processor.exporters.helper.sending_queue import QueuedItem
from tracejudge.processor.pdata.batch import TraceBatch
from tracejudge.processor.pdata.evaluation_events import EVALUATION_SPAN_NAME, EVENT_NAME, SERVICE_NAME

log = logging.getLogger(__name__)

EVENT_MARKER = EVENT_NAME.encode()  # in every request holding a result; a byte scan is far cheaper than a parse
CHECKS_IDENTIFIER = "checks"
UNJUDGED_LABEL = "unjudged"
METADATA_PREFIX = "tracejudge."
# Phoenix keeps the name "note" for span notes and refuses a whole request (400) holding an annotation so named.
_RESERVED_NAMES = frozenset({"note"})
# Besides these, every 5xx is retried: posting again is safe, annotations are upserted. Other 4xx are permanent.
_RETRYABLE_STATUS = {408, 429}


@dataclass(frozen=True, kw_only=True)
class PhoenixExporterConfig(ExporterSettings):
    endpoint: str = ""  # Phoenix's base URL; /v1/span_annotations is appended
    # Phoenix's REST routes read plain JSON only (only its OTLP route decodes gzip): "none" is the one choice.
    compression: Literal["none"] = "none"
    # A 404 means Phoenix has not ingested an annotated span yet (spans come through another exporter, and Phoenix
    # lags minutes behind a burst): the annotations of the spans it lacks wait this long after delivery began, with
    # retry_on_failure's backoff, while the others of their request are posted at once; then they are given up on.
    # Other failures are bounded by retry_on_failure.max_elapsed_time as in every exporter.
    missing_span_timeout: Duration = 6 * 3600.0

    @property
    def url(self) -> str:
        return self.endpoint.rstrip("/") + "/v1/span_annotations"

    def validate(self, path: str) -> None:
        if not self.endpoint:
            raise ConfigError(f"{path}.endpoint: required, Phoenix's base URL, e.g. http://phoenix:6006")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.endpoint: must start with http:// or https://")
        if self.missing_span_timeout < 0:
            raise ConfigError(f"{path}.missing_span_timeout: must not be negative (0: a 404 is not retried)")
        self.validate_settings(path)
        if self.tls.insecure:
            raise ConfigError(f"{path}.tls.insecure: not used by phoenix; an http:// endpoint is plaintext")


class PhoenixExporter:
    """An Exporter (see consumer.py) whose sending queue takes only the requests holding evaluation results: the
    rest take no queue room and cause no HTTP call."""

    def __init__(self, settings: CreateSettings, config: PhoenixExporterConfig) -> None:
        self.name = settings.name
        # the queue retries as long as annotations may wait for their spans; the sender holds other failures to
        # retry_on_failure.max_elapsed_time
        retry = config.retry_on_failure
        if retry.max_elapsed_time:
            retry = dataclasses.replace(retry, max_elapsed_time=max(retry.max_elapsed_time, config.missing_span_timeout
                                                                    + retry.max_interval))
        self._queued = queued_exporter(settings, AnnotationSender(config),
                                       dataclasses.replace(config, retry_on_failure=retry))

    def has_room(self, batch: TraceBatch) -> bool:
        return EVENT_MARKER not in batch.payload or self._queued.has_room(batch)

    def enqueue(self, batch: TraceBatch) -> QueuedItem | None:
        return self._queued.enqueue(batch) if EVENT_MARKER in batch.payload else None

    def withdraw(self, receipt: object) -> None:
        if receipt is not None:
            self._queued.withdraw(receipt)

    def pending(self) -> int:
        return self._queued.pending()

    async def start(self) -> None:
        await self._queued.start()

    async def shutdown(self) -> None:
        await self._queued.shutdown()


class _Body(bytes):
    """One queued request's annotations (the bytes: their JSON, b"" if none), what is still to be posted of them,
    and until when (monotonic) a 404 for a span Phoenix lacks, or any other failure, is retried."""

    missing_span_deadline = 0.0
    give_up_at = 0.0  # retry_on_failure.max_elapsed_time after delivery began (inf: no bound)
    annotations: list[dict[str, Any]]


class AnnotationSender:
    """A Sender (see exporters/helper/queued.py): each queued OTLP request becomes one POST of its annotations. When
    Phoenix answers 404 naming spans it has not ingested, the others are posted at once and only theirs wait."""

    def __init__(self, config: PhoenixExporterConfig) -> None:
        self._url = config.url
        self._headers = {**config.headers, "Content-Type": "application/json"}
        self._ssl = config.tls.ssl_context() if self._url.startswith("https://") else None
        self._missing_span_timeout_s = config.missing_span_timeout
        self._max_elapsed_s = config.retry_on_failure.max_elapsed_time or math.inf
        self._session: aiohttp.ClientSession | None = None

    async def encode(self, payload: bytes) -> bytes:
        """Parsed and turned into JSON once per request, off the event loop; empty when nothing is to be posted
        (the byte scan can match a request whose spans hold no result event)."""
        annotations = await asyncio.to_thread(lambda: span_annotations(ExportTraceServiceRequest.FromString(payload)))
        body = _Body(_json(annotations) if annotations else b"")
        body.annotations = annotations
        now = time.monotonic()
        body.missing_span_deadline = now + self._missing_span_timeout_s
        body.give_up_at = now + self._max_elapsed_s
        return body

    async def send(self, body: bytes, timeout_s: float) -> None:
        if not body:
            return
        assert isinstance(body, _Body)
        try:
            await self._post(body.annotations, timeout_s)
        except _NotIngested as missing:
            waiting = [a for a in body.annotations if a["span_id"] in missing.span_ids]
            rest = [a for a in body.annotations if a["span_id"] not in missing.span_ids]
            if rest and waiting:  # a span Phoenix lacks must not hold back those it has
                await self._post_or_retry(body, rest, timeout_s)
            body.annotations = waiting or body.annotations
            if time.monotonic() < body.missing_span_deadline:
                log.debug("%s; waiting until Phoenix has ingested the span(s)", missing)
                raise RetryableError(str(missing)) from missing
            raise PermanentError(
                f"{missing} — still, {self._missing_span_timeout_s:g} s after delivery began (missing_span_timeout), "
                "so not a Phoenix that lags: are these spans exported to this Phoenix, e.g. by an otlphttp exporter "
                "in the same pipeline?") from missing
        except RetryableError as error:
            if time.monotonic() >= body.give_up_at:  # the long wait for spans does not lengthen other retries
                raise PermanentError(f"{error} (retry_on_failure.max_elapsed_time has passed)") from error
            raise

    async def _post_or_retry(self, body: _Body, annotations: list[dict[str, Any]], timeout_s: float) -> None:
        try:
            await self._post(annotations, timeout_s)
        except _NotIngested:
            return  # Phoenix lost one more meanwhile: they are all retried together
        body.annotations = [a for a in body.annotations if a not in annotations]

    async def _post(self, annotations: list[dict[str, Any]], timeout_s: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        data = _json(annotations)
        try:
            with suppressed():
                async with self._session.post(
                    self._url,
                    params={"sync": "true"},  # so that an unknown span is a 404 here, not a silent drop later
                    data=data,
                    headers=self._headers,
                    ssl=self._ssl or True,
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                ) as response:
                    reply = await response.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RetryableError(f"{self._url}: {type(e).__name__}: {e}") from e
        if 200 <= response.status < 300:
            return
        message = f"{self._url}: HTTP {response.status}: {_detail(reply)}"
        if response.status == 404:
            raise _NotIngested(message, _missing_span_ids(_detail(reply)))
        if response.status in _RETRYABLE_STATUS or response.status >= 500:
            raise RetryableError(message, retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
        raise PermanentError(message)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _NotIngested(Exception):
    """Phoenix answered 404: it has not ingested these spans (all of the request's, if it did not say which)."""

    def __init__(self, message: str, span_ids: frozenset[str]) -> None:
        super().__init__(message)
        self.span_ids = span_ids


_MISSING = re.compile(r"Spans? with IDs? ([0-9a-f, ]+?) (?:do not exist|not found)", re.IGNORECASE)


def _missing_span_ids(detail: str) -> frozenset[str]:
    """The span ids Phoenix names in its 404 ("Spans with IDs a, b do not exist.")."""
    found = _MISSING.search(detail)
    return frozenset(part.strip() for part in found.group(1).split(",") if part.strip()) if found else frozenset()


def _json(annotations: list[dict[str, Any]]) -> bytes:
    """The JSON body of POST /v1/span_annotations."""
    return json.dumps({"data": annotations}, separators=(",", ":")).encode()


def span_annotations(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """One annotation per `gen_ai.evaluation.result` event, as Phoenix's SpanAnnotationData."""
    found: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes, "service.name").get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                events = [event for event in span.events if event.name == EVENT_NAME]
                if events:
                    found += _annotations(span, events, from_tracejudge=service == SERVICE_NAME)
    return found


def _annotations(span: Span, events: Sequence[Span.Event], from_tracejudge: bool) -> list[dict[str, Any]]:
    span_metadata = _attributes(span.attributes, METADATA_PREFIX)
    if from_tracejudge and span.name == EVALUATION_SPAN_NAME:
        if not span.parent_span_id:
            return []  # nothing to annotate: the judged span is unknown
        target, kind = span.parent_span_id.hex(), "LLM"
        identifier = str(span_metadata.get("tracejudge.judge.version") or SERVICE_NAME)
    else:
        target, kind, identifier = span.span_id.hex(), "CODE", CHECKS_IDENTIFIER
    annotations = []
    for event in events:
        annotation = _annotation(_attributes(event.attributes), span_metadata)
        if annotation is not None:
            annotations.append({**annotation, "span_id": target, "annotator_kind": kind, "identifier": identifier})
    return annotations


def _annotation(event: dict[str, Any], span_metadata: dict[str, Any]) -> dict[str, Any] | None:
    name = event.get("gen_ai.evaluation.name")
    if not isinstance(name, str) or not name or name in _RESERVED_NAMES:
        return None
    # The event's own values (its per-metric cost, say) win over the span's.
    metadata = span_metadata | {key: value for key, value in event.items() if key.startswith(METADATA_PREFIX)}
    if response_id := event.get("gen_ai.response.id"):
        metadata["gen_ai.response.id"] = response_id
    explanation = str(event.get("gen_ai.evaluation.explanation") or "")
    if error := event.get("error.type"):  # unjudged: no score, whatever else the event says
        metadata["error.type"] = error
        because = f"unjudged ({error})" + (f": {explanation}" if explanation else "")
        return {"name": name, "result": {"label": UNJUDGED_LABEL, "explanation": because}, "metadata": metadata}
    result: dict[str, Any] = {}
    score = event.get("gen_ai.evaluation.score.value")
    if isinstance(score, int | float) and not isinstance(score, bool):
        result["score"] = float(score)
    if label := event.get("gen_ai.evaluation.score.label"):
        result["label"] = str(label)
    if explanation:
        result["explanation"] = explanation
    return {"name": name, "result": result, "metadata": metadata}


def _attributes(attributes: Iterable[KeyValue], prefix: str = "") -> dict[str, Any]:
    """Plain values of the attributes whose key starts with `prefix` (all by default)."""
    return {kv.key: _plain(kv.value) for kv in attributes if kv.key.startswith(prefix)}


def _plain(value: AnyValue) -> Any:
    """A JSON value; None for what JSON cannot hold (NaN, bytes, maps)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(item) for item in value.array_value.values]
    if kind == "double_value":
        return value.double_value if math.isfinite(value.double_value) else None
    if kind in ("string_value", "bool_value", "int_value"):
        return getattr(value, kind)
    return None


def _detail(reply: bytes) -> str:
    """Phoenix's message: its HTTP errors are plain text, its validation errors FastAPI's {"detail": ...}."""
    try:
        detail = json.loads(reply)["detail"]
    except (ValueError, TypeError, KeyError):
        return reply[:300].decode(errors="replace")
    return str(detail)[:300]


factory = Factory("phoenix", "exporters", PhoenixExporterConfig, PhoenixExporter)
