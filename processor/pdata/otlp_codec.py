"""Decoding OTLP export requests of each signal (protobuf and JSON) into batches, and encoding the responses.

Protobuf requests are parsed only to validate and count them: what is forwarded is the request's own bytes.
JSON requests follow the OTLP/JSON rules: ids are hex strings, enums integers, unknown fields are ignored.
Items with malformed ids (spans without valid ids; log records whose ids are neither empty nor of the right
length) are rejected one by one, as OTLP `partial_success`; only then is a request re-encoded.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracejudge.processor.component.errors import PermanentError
from tracejudge.processor.pdata.batch import SignalBatch, TraceBatch
from tracejudge.processor.pdata.signals import SPECS, Signal

log = logging.getLogger(__name__)

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


@dataclass(frozen=True, slots=True)
class Decoded:
    """An accepted batch, plus how many spans of the request were rejected and why."""

    batch: TraceBatch | SignalBatch
    rejected: int = 0  # items: spans, log records or data points
    rejection: str = ""


def decode_protobuf(payload: bytes, receiver: str, signal: Signal = "traces") -> Decoded:
    request = SPECS[signal].request()
    try:
        request.ParseFromString(payload)
    except DecodeError as e:
        raise PermanentError(f"request body is not a valid protobuf {type(request).__name__}: {e}") from e
    return _screen(request, payload, receiver, signal)


def decode_json(body: bytes, receiver: str, signal: Signal = "traces") -> Decoded:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PermanentError(f"request body is not valid JSON: {e}") from e
    except RecursionError as e:
        raise PermanentError("request body is JSON nested too deeply") from e
    request = SPECS[signal].request()
    if not isinstance(document, dict):
        raise PermanentError(f"request body must be a JSON object (an {type(request).__name__})")
    try:
        _hex_ids_to_base64(document, "")
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise PermanentError(f"request body is not a valid OTLP/JSON {type(request).__name__}: {e}") from e
    except RecursionError as e:
        raise PermanentError("request body is JSON nested too deeply") from e
    return _screen(request, None, receiver, signal)


def encode_response(decoded: Decoded, as_json: bool, signal: Signal = "traces") -> bytes:
    spec = SPECS[signal]
    response = spec.response()
    if decoded.rejected:
        setattr(response.partial_success, spec.rejected_field, decoded.rejected)  # type: ignore[attr-defined]
        response.partial_success.error_message = decoded.rejection  # type: ignore[attr-defined]
    if as_json:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def encode_status(code: int, message: str, as_json: bool, details: list[Any] | None = None) -> bytes:
    """A google.rpc.Status body, as OTLP/HTTP requires for error responses."""
    status = status_pb2.Status(code=code, message=message)
    for detail in details or []:
        status.details.add().Pack(detail)
    if as_json:
        return json_format.MessageToJson(status, indent=None).encode()
    body: bytes = status.SerializeToString()
    return body


def _screen(request: Message, payload: bytes | None, receiver: str, signal: Signal) -> Decoded:
    if isinstance(request, ExportTraceServiceRequest):
        return _screen_traces(request, payload, receiver)
    if isinstance(request, ExportLogsServiceRequest):
        total, bad = _screen_logs(request)
    else:
        assert isinstance(request, ExportMetricsServiceRequest)
        total, bad = data_point_count(request), 0
    if bad or payload is None:
        payload = request.SerializeToString()
    rejection = (f"{bad} log record(s) rejected: a trace_id must be empty or 16 bytes, a span_id empty or 8 bytes"
                 if bad else "")
    return Decoded(SignalBatch(signal, payload, request, total - bad, receiver), bad, rejection)


def _screen_traces(request: ExportTraceServiceRequest, payload: bytes | None, receiver: str) -> Decoded:
    total = 0
    bad = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                total += 1
                if not _valid_ids(span.trace_id, span.span_id):
                    bad += 1
    if bad:
        _drop_invalid(request)
        payload = None
    if payload is None:
        payload = request.SerializeToString()
    batch = TraceBatch(payload=payload, request=request, span_count=total - bad, receiver=receiver)
    rejection = f"{bad} span(s) rejected: trace_id must be 16 non-zero bytes and span_id 8 non-zero bytes"
    return Decoded(batch, bad, rejection if bad else "")


def _screen_logs(request: ExportLogsServiceRequest) -> tuple[int, int]:
    """(records, rejected records): those whose ids could not be joined to a span are dropped from `request`."""
    total = bad = 0
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            total += len(records)
            if any(len(r.trace_id) not in (0, 16) or len(r.span_id) not in (0, 8) for r in records):
                keep = [r for r in records if len(r.trace_id) in (0, 16) and len(r.span_id) in (0, 8)]
                bad += len(records) - len(keep)
                del records[:]
                records.extend(keep)
    return total, bad


_POINTS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def data_point_count(request: ExportMetricsServiceRequest) -> int:
    return sum(len(getattr(metric, kind).data_points)
               for resource_metrics in request.resource_metrics for scope_metrics in resource_metrics.scope_metrics
               for metric in scope_metrics.metrics if (kind := metric.WhichOneof("data")) in _POINTS)


def _valid_ids(trace_id: bytes, span_id: bytes) -> bool:
    return len(trace_id) == 16 and len(span_id) == 8 and any(trace_id) and any(span_id)


def _drop_invalid(request: ExportTraceServiceRequest) -> None:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            keep = [s for s in scope_spans.spans if _valid_ids(s.trace_id, s.span_id)]
            del scope_spans.spans[:]
            scope_spans.spans.extend(keep)


def _hex_ids_to_base64(node: Any, path: str) -> None:
    """OTLP/JSON writes ids as hex, protobuf's JSON mapping expects base64 for bytes: convert in place."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _hex_ids_to_base64(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _ID_FIELDS and isinstance(value, str):
            node[key] = _hex_to_base64(value, f"{path}.{key}".lstrip("."))
        elif isinstance(value, (dict, list)) and key not in ("attributes", "body", "value"):
            _hex_ids_to_base64(value, f"{path}.{key}".lstrip("."))


def _hex_to_base64(value: str, where: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        raise PermanentError(f"{where}: {value!r} is not a hex-encoded id") from e
    return base64.b64encode(raw).decode()  # a wrong length is a per-span reject, decided in _screen


def log_partial_success(reply: bytes, endpoint: str, signal: Signal = "traces") -> None:
    """A downstream may accept a request but reject some items: say so, since we cannot retry them."""
    spec = SPECS[signal]
    response = spec.response()
    try:
        response.ParseFromString(reply)
    except DecodeError:
        return
    partial = response.partial_success  # type: ignore[attr-defined]
    rejected = getattr(partial, spec.rejected_field)
    if rejected or partial.error_message:
        log.warning("%s rejected %d %s(s): %s", endpoint, rejected, spec.noun, partial.error_message)
