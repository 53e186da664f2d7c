"""Decoding OTLP trace export requests (protobuf and JSON) into TraceBatches, and encoding the responses.

Protobuf requests are parsed only to validate and count them: what is forwarded is the request's own bytes.
JSON requests follow the OTLP/JSON rules: ids are hex strings, enums integers, unknown fields are ignored.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tracejudge.processor.component.errors import PermanentError
from tracejudge.processor.pdata.batch import TraceBatch

log = logging.getLogger(__name__)

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


@dataclass(frozen=True, slots=True)
class Decoded:
    """An accepted batch, plus how many spans of the request were rejected and why."""

    batch: TraceBatch
    rejected_spans: int = 0
    rejection: str = ""


def decode_protobuf(payload: bytes, receiver: str) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except DecodeError as e:
        raise PermanentError(f"request body is not a valid protobuf ExportTraceServiceRequest: {e}") from e
    return _screen(request, payload, receiver)


def decode_json(body: bytes, receiver: str) -> Decoded:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PermanentError(f"request body is not valid JSON: {e}") from e
    except RecursionError as e:
        raise PermanentError("request body is JSON nested too deeply") from e
    if not isinstance(document, dict):
        raise PermanentError("request body must be a JSON object (an ExportTraceServiceRequest)")
    request = ExportTraceServiceRequest()
    try:
        _hex_ids_to_base64(document, "")
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise PermanentError(f"request body is not a valid OTLP/JSON ExportTraceServiceRequest: {e}") from e
    except RecursionError as e:
        raise PermanentError("request body is JSON nested too deeply") from e
    return _screen(request, None, receiver)


def encode_response(decoded: Decoded, as_json: bool) -> bytes:
    response = ExportTraceServiceResponse()
    if decoded.rejected_spans:
        response.partial_success.rejected_spans = decoded.rejected_spans
        response.partial_success.error_message = decoded.rejection
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


def _screen(request: ExportTraceServiceRequest, payload: bytes | None, receiver: str) -> Decoded:
    """Count spans and reject those with invalid ids; only then is a request re-encoded."""
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


def log_partial_success(reply: bytes, endpoint: str) -> None:
    """A downstream may accept a request but reject some spans: say so, since we cannot retry them."""
    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(reply)
    except DecodeError:
        return
    if response.partial_success.rejected_spans or response.partial_success.error_message:
        log.warning("%s rejected %d span(s): %s", endpoint, response.partial_success.rejected_spans,
                    response.partial_success.error_message)
