"""The `eval_service` extension: tracejudge's own EvalService (proto/tracejudge/v1/eval_service.proto) on gRPC, and
the same messages as JSON over HTTP (`POST /v1/feedback`, `GET /v1/traces/{trace_id}`). Feedback goes to a judge
stage (found through the host by the capability `feedback`), which stores it with its statistics and has the traces
it is negative about judged."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from aiohttp import web
from google.protobuf import json_format

from tracejudge.processor.component.errors import ConfigError, PermanentError, StorageError
from tracejudge.processor.component.factory import Factory, Reference
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.pdata.feedback import Feedback, FeedbackReceipt, problems
from tracejudge.processor.transport.auth import AuthConfig, Authenticator
from tracejudge.processor.transport.http_site import HttpSite, parse_endpoint
from tracejudge.processor.transport.status import abort, refusal_for, retry_after_s
from tracejudge.processor.transport.tls import TlsServerConfig
from tracejudge.stats.records import Alert, Evaluation
from tracejudge.v1 import eval_service_pb2 as pb
from tracejudge.v1 import eval_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

MAX_FEEDBACK_PER_REQUEST = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    endpoint: str
    tls: TlsServerConfig | None = None  # cert_file and key_file (client_ca_file for mutual TLS), as for receivers

    def validate(self, path: str) -> None:
        parse_endpoint(self.endpoint, f"{path}.endpoint")


@dataclass(frozen=True)
class EvalServiceConfig:
    grpc: Endpoint | None = None  # e.g. {endpoint: localhost:4319}
    http: Endpoint | None = None  # e.g. {endpoint: localhost:4320}
    judge_queue: str = ""  # the judge_queue processor that takes the feedback; "" if the config has one
    auth: AuthConfig | None = None  # an authenticator extension (bearertokenauth) for both protocols

    def validate(self, path: str) -> None:
        if self.grpc is None and self.http is None:
            raise ConfigError(f"{path}: give grpc and/or http, e.g. grpc: {{endpoint: localhost:4319}}")

    def references(self, path: str) -> list[Reference]:
        found = [Reference(f"{path}.judge_queue", self.judge_queue, "processors", "feedback",
                           "judge_queue processor")]
        return found + ([self.auth.reference(f"{path}.auth")] if self.auth is not None else [])


class InvalidFeedback(PermanentError):
    def __init__(self, found: list[str]) -> None:
        super().__init__("; ".join(found))


class FeedbackApi(Protocol):
    """What the EvalService needs of the judge stage it names (offered as `feedback`)."""

    def feedback(self, records: list[Feedback]) -> FeedbackReceipt: ...

    def trace_view(self, trace_id: str) -> tuple[list[Evaluation], list[Alert], list[Feedback]]: ...


def feedback_records(request: Any) -> list[Feedback]:
    """A SubmitFeedbackRequest's records, or InvalidFeedback naming every bad field."""
    if not request.feedback:
        raise InvalidFeedback(["feedback: send at least one record"])
    if len(request.feedback) > MAX_FEEDBACK_PER_REQUEST:
        raise InvalidFeedback([f"feedback: at most {MAX_FEEDBACK_PER_REQUEST} records per request"])
    records, found = [], []
    for index, message in enumerate(request.feedback):
        path = f"feedback[{index}]"
        scale = message.rating_max or 5.0
        if not 0 < scale < math.inf:
            found.append(f"{path}.rating_max: must be a positive number (or 0 for 5)")
            scale = 5.0
        rating = message.rating / scale if message.HasField("rating") else None
        labels = tuple((label.metric, label.passed) for label in message.labels)
        found += [f"{path}.labels[{i}].metric: required" for i, (metric, _) in enumerate(labels) if not metric]
        found += [f"{path}.labels[{i}].passed: required (true or false)" for i, label in enumerate(message.labels)
                  if not label.HasField("passed")]
        record = Feedback(trace_id=message.trace_id.lower(), span_id=message.span_id.lower(),
                          feedback_id=message.feedback_id, time_unix_nano=message.time_unix_nano,
                          thumbs={pb.THUMBS_UP: 1, pb.THUMBS_DOWN: -1}.get(message.thumbs, 0), rating=rating,
                          regenerated=message.regenerated, edited_text=message.edited_text, comment=message.comment,
                          source=message.source or "api", labels=labels)
        found += problems(record, path)
        records.append(record)
    if found:
        raise InvalidFeedback(found)
    return records


def receipt_message(receipt: FeedbackReceipt) -> Any:
    return pb.SubmitFeedbackResponse(accepted=receipt.accepted, queued_for_judging=receipt.queued,
                                     awaiting_trace=receipt.awaiting_trace)


def trace_message(evaluations: list[Evaluation], alerts: list[Alert], feedback: list[Feedback]) -> Any:
    response = pb.GetTraceResponse()
    for e in evaluations:
        response.evaluations.add(span_id=e.span_id, metric=e.metric, score=e.score, passed=e.passed, tier=e.tier,
                                 judge_model=e.judge_model, judge_version=e.judge_version, service=e.service,
                                 prompt_version=e.prompt_version, model=e.model, fingerprint=e.fingerprint,
                                 stratum=e.stratum, probability=e.probability, time_unix_nano=e.time_unix_nano)
    for a in alerts:
        alert = response.alerts.add(alert_id=a.alert_id, time_unix_nano=a.time_unix_nano, series=str(a.series),
                                    cause=a.cause, detector=a.detector, summary=a.summary)
        for name in ("effect", "ci_low", "ci_high", "p_value"):
            if getattr(a, name) is not None:
                setattr(alert, name, getattr(a, name))
    for f in feedback:
        message = response.feedback.add(
            trace_id=f.trace_id, span_id=f.span_id, feedback_id=f.feedback_id, time_unix_nano=f.time_unix_nano,
            thumbs=pb.THUMBS_UP if f.thumbs > 0 else pb.THUMBS_DOWN if f.thumbs < 0 else pb.THUMBS_UNSPECIFIED,
            regenerated=f.regenerated, edited_text=f.edited_text, comment=f.comment, source=f.source)
        if f.rating is not None:
            message.rating, message.rating_max = f.rating, 1.0
        for metric, passed in f.labels:
            message.labels.add(metric=metric, passed=passed)
    return response


class EvalService:
    """Serves a judge stage's feedback and evaluations. It refers into the pipelines, so the service starts it
    after them, and it finds its stage then."""

    def __init__(self, settings: CreateSettings, config: EvalServiceConfig) -> None:
        self._config = config
        self._host = settings.host
        self._stage: FeedbackApi | None = None
        self._auth: Authenticator | None = None
        self._name = settings.name
        self._server: grpc.aio.Server | None = None
        self._site: HttpSite | None = None
        self.grpc_port = self.http_port = 0

    async def start(self) -> None:
        self._stage = self._host.find("processors", "feedback", self._config.judge_queue)
        if self._config.auth is not None:
            self._auth = self._host.find("extensions", "authenticator", self._config.auth.authenticator)
        if self._config.grpc is not None:
            server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            pb_grpc.add_EvalServiceServicer_to_server(_Servicer(self), server)
            tls = self._config.grpc.tls
            try:
                self.grpc_port = (server.add_secure_port(self._config.grpc.endpoint, tls.grpc_credentials())
                                  if tls is not None else server.add_insecure_port(self._config.grpc.endpoint))
            except RuntimeError as e:
                raise OSError(f"cannot listen for the EvalService on {self._config.grpc.endpoint} "
                              "(is the port in use?)") from e
            await server.start()
            self._server = server
        if self._config.http is not None:
            app = web.Application(client_max_size=MAX_BODY_BYTES)
            app.router.add_post("/v1/feedback", self._post_feedback)
            app.router.add_get("/v1/traces/{trace_id}", self._get_trace)
            tls = self._config.http.tls
            self._site = HttpSite(app, self._config.http.endpoint, tls.ssl_context() if tls is not None else None)
            await self._site.start()
            self.http_port = self._site.port
        log.info("%s: EvalService: gRPC on port %d, HTTP on port %d (0: off)", self._name, self.grpc_port,
                 self.http_port)

    async def shutdown(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=5.0)
        if self._site is not None:
            site, self._site = self._site, None
            await site.shutdown()

    def submit(self, request: Any) -> Any:
        assert self._stage is not None
        records = feedback_records(request)
        with _store_errors_retryable():
            return receipt_message(self._stage.feedback(records))

    def trace(self, trace_id: str) -> Any:
        assert self._stage is not None
        trace_id = trace_id.lower()
        if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
            raise InvalidFeedback([f"trace_id: {trace_id!r} is not a trace id (32 hex digits)"])
        with _store_errors_retryable():
            return trace_message(*self._stage.trace_view(trace_id))

    def authenticate(self, authorization: str | None) -> None:
        if self._auth is not None:
            self._auth.authenticate(authorization)

    async def _post_feedback(self, request: web.Request) -> web.Response:
        try:
            self.authenticate(request.headers.get("Authorization"))
            return _json(self.submit(await _feedback_request(request)))
        except Exception as error:
            return _http_error(error)

    async def _get_trace(self, request: web.Request) -> web.Response:
        try:
            self.authenticate(request.headers.get("Authorization"))
            return _json(self.trace(request.match_info["trace_id"]))
        except Exception as error:
            return _http_error(error)


class _Servicer:
    def __init__(self, service: EvalService) -> None:
        self._service = service

    async def SubmitFeedback(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(context, lambda: self._service.submit(request))

    async def GetTrace(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(context, lambda: self._service.trace(request.trace_id))

    async def _call(self, context: grpc.aio.ServicerContext, work: Any) -> Any:
        try:
            self._service.authenticate(dict(context.invocation_metadata() or ()).get("authorization"))
            return work()
        except Exception as error:
            await abort(context, error)


async def _feedback_request(request: web.Request) -> Any:
    """The JSON body as a SubmitFeedbackRequest (one record on its own is taken too); PermanentError if it is not
    one."""
    try:
        document = await request.json()
    except web.HTTPRequestEntityTooLarge as e:
        raise PermanentError(f"the body is over {MAX_BODY_BYTES} bytes", kind="too_large") from e
    except ValueError as e:
        raise PermanentError(f"the body is not JSON: {e}") from e
    except RecursionError as e:
        raise PermanentError("the body nests deeper than any feedback request does") from e
    if not isinstance(document, dict):
        raise PermanentError('the body must be a JSON object: {"feedback": [records]}, or one record')
    if "feedback" not in document:
        document = {"feedback": [document]}
    try:
        return json_format.ParseDict(document, pb.SubmitFeedbackRequest())
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as e:
        found = _parse_problems(document)  # every bad field, not only the first the parser met
        raise InvalidFeedback(found) if found else PermanentError(
            str(e) or "the body nests deeper than any feedback request does") from e


def _parse_problems(document: dict[str, Any]) -> list[str]:
    """What is wrong with each field of each record, parsed one by one; enums name their spellings."""
    records = document.get("feedback")
    if not isinstance(records, list):
        return ["feedback: must be a list of records"]
    found = []
    fields = pb.Feedback.DESCRIPTOR.fields_by_name
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            found.append(f"feedback[{index}]: must be an object")
            continue
        for key, value in record.items():
            try:
                json_format.ParseDict({key: value}, pb.Feedback())
            except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as e:
                field = fields.get(key) or next((f for f in fields.values() if f.json_name == key), None)
                spellings = (f" (one of {', '.join(v.name for v in field.enum_type.values)})"
                             if field is not None and field.enum_type is not None else "")
                found.append(f"feedback[{index}].{key}: {str(e).rstrip('.')}{spellings}")
    return found


@contextlib.contextmanager
def _store_errors_retryable() -> Iterator[None]:
    try:
        yield
    except StorageError:  # retryable for the client
        log.exception("eval service: the store failed")
        raise


def _json(message: Any) -> web.Response:
    return web.json_response(json_format.MessageToDict(message, preserving_proto_field_name=True))


def _http_error(error: Exception) -> web.Response:
    refusal = refusal_for(error)
    response = web.json_response({"error": refusal.message}, status=refusal.http_status)
    if (seconds := retry_after_s(refusal)) is not None:
        response.headers["Retry-After"] = str(seconds)
    return response


factory = Factory("eval_service", "extensions", EvalServiceConfig, EvalService)
