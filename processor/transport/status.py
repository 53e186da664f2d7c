"""The one place where errors become statuses (gRPC code, HTTP status, retry hint): for the OTLP receivers and the
EvalService alike."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from tracejudge.processor.component.errors import PermanentError, RetryableError, StorageError

log = logging.getLogger(__name__)

# Clients wait this long before retrying a refusal that carries no better estimate.
DEFAULT_RETRY_AFTER_S = 1.0

_PERMANENT = {
    "invalid": (grpc.StatusCode.INVALID_ARGUMENT, 400),
    "too_large": (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
    "unauthenticated": (grpc.StatusCode.UNAUTHENTICATED, 401),
    "unsupported_media_type": (grpc.StatusCode.INVALID_ARGUMENT, 415),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    grpc_code: grpc.StatusCode
    http_status: int
    message: str
    retry_after_s: float | None = None  # set only for retryable refusals

    @property
    def rpc_code(self) -> int:
        """The numeric google.rpc.Code, as carried in a Status body."""
        return int(self.grpc_code.value[0])


def refusal_for(error: Exception) -> Refusal:
    """Permanent → INVALID_ARGUMENT/400 family; retryable → UNAVAILABLE/503 with a retry hint (never a bare
    RESOURCE_EXHAUSTED for load, which OTLP clients would not retry); anything else is our bug → INTERNAL/500."""
    if isinstance(error, PermanentError):
        code, http_status = _PERMANENT[error.kind]
        return Refusal(code, http_status, str(error))
    if isinstance(error, StorageError):  # a store that cannot be written now (a full disk) may be later
        log.warning("refused a request: %s", error)
        return Refusal(grpc.StatusCode.UNAVAILABLE, 503, f"{error}; retry later", DEFAULT_RETRY_AFTER_S)
    if isinstance(error, RetryableError):
        after = error.retry_after_s if error.retry_after_s is not None else DEFAULT_RETRY_AFTER_S
        return Refusal(grpc.StatusCode.UNAVAILABLE, 503, str(error), max(after, 0.0))
    log.error("internal error while answering a request", exc_info=error)
    return Refusal(grpc.StatusCode.INTERNAL, 500, f"internal error: {type(error).__name__}")


def retry_after_s(refusal: Refusal) -> int | None:
    """What an HTTP Retry-After (and an HTTP RetryInfo) says: whole seconds, at least 1; None if not retryable."""
    return None if refusal.retry_after_s is None else max(1, math.ceil(refusal.retry_after_s))


async def abort(context: grpc.aio.ServicerContext, error: Exception) -> NoReturn:
    """End a gRPC call with `error`'s status; a retryable one carries RetryInfo, as OTLP clients expect."""
    refusal = refusal_for(error)
    if refusal.retry_after_s is not None:
        delay = duration_pb2.Duration(seconds=math.floor(refusal.retry_after_s),
                                      nanos=int((refusal.retry_after_s % 1) * 1e9))
        status = status_pb2.Status(code=refusal.rpc_code, message=refusal.message)
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    await context.abort(refusal.grpc_code, refusal.message)
    raise RuntimeError("grpc.aio abort() returned instead of raising")
