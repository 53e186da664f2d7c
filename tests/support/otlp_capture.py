"""A real OTLP/gRPC downstream on 127.0.0.1:0 that records the raw bytes of every Export it receives.

Faults are scripted: `fail_next(code, retry_after_s)` makes upcoming calls fail with a status (and RetryInfo),
`hold()` makes calls wait until `release()`, so a test can fill sending queues deterministically.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class CaptureServer:
    def __init__(self, port: int = 0) -> None:
        self.requests: list[bytes] = []
        self.metadata: list[dict[str, str]] = []
        self.calls = 0
        self._faults: deque[tuple[grpc.StatusCode, float | None]] = deque()
        self._gate = asyncio.Event()
        self._gate.set()
        self._changed = asyncio.Condition()
        self._port = port
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> CaptureServer:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(self._export)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
        self.port = server.add_insecure_port(f"127.0.0.1:{self._port}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._gate.set()
            await self._server.stop(grace=None)
            self._server = None

    async def __aenter__(self) -> CaptureServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def fail_next(self, code: grpc.StatusCode, retry_after_s: float | None = None, times: int = 1) -> None:
        self._faults.extend([(code, retry_after_s)] * times)

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def spans(self) -> list[bytes]:
        """Span ids of everything received, in arrival order."""
        ids = []
        for raw in self.requests:
            request = ExportTraceServiceRequest.FromString(raw)
            ids += [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return ids

    async def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with self._changed:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"downstream got {len(self.requests)} request(s), expected {count}")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    continue

    async def _export(self, payload: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        self.calls += 1
        await self._gate.wait()
        if self._faults:
            code, retry_after_s = self._faults.popleft()
            if retry_after_s is not None:
                status = status_pb2.Status(code=code.value[0], message="scripted fault")
                delay = duration_pb2.Duration(seconds=math.floor(retry_after_s),
                                              nanos=int((retry_after_s % 1) * 1e9))
                status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            await context.abort(code, "scripted fault")
        self.requests.append(payload)
        self.metadata.append({k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)})
        async with self._changed:
            self._changed.notify_all()
        return ExportTraceServiceResponse().SerializeToString()
