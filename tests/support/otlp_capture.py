"""Real OTLP downstreams on 127.0.0.1:0 that record the raw bytes of every Export they receive, per signal:
`CaptureServer` (OTLP/gRPC: TraceService, MetricsService, LogsService) and `HttpCaptureServer` (OTLP/HTTP).

Faults are scripted (gRPC): `fail_next(code, retry_after_s)` makes upcoming calls fail with a status (and
RetryInfo), `hold()` makes calls wait until `release()`, so a test can fill sending queues deterministically.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import deque

import grpc
from aiohttp import web
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracejudge.processor.pdata.signals import SIGNALS, SPECS, Signal


class CaptureServer:
    """`requests` holds the traces received; `received[signal]` those of every signal."""

    def __init__(self, port: int = 0) -> None:
        self.received: dict[Signal, list[bytes]] = {signal: [] for signal in SIGNALS}
        self.requests = self.received["traces"]
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
        server.add_generic_rpc_handlers(tuple(grpc.method_handlers_generic_handler(SPECS[signal].grpc_service, {
            "Export": grpc.unary_unary_rpc_method_handler(functools.partial(self._export, signal))})
            for signal in SIGNALS))
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

    async def wait_for_requests(self, count: int, timeout_s: float = 10.0, signal: Signal = "traces") -> None:
        deadline = time.monotonic() + timeout_s
        received = self.received[signal]
        async with self._changed:
            while len(received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"downstream got {len(received)} {signal} request(s), expected {count}")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    continue

    async def _export(self, signal: Signal, payload: bytes,
                      context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
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
        self.received[signal].append(payload)
        self.metadata.append({k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)})
        async with self._changed:
            self._changed.notify_all()
        response: bytes = SPECS[signal].response().SerializeToString()
        return response


class HttpCaptureServer:
    """OTLP/HTTP on 127.0.0.1:0: records the (inflated) body of every POST to /v1/<signal> by signal."""

    def __init__(self, port: int = 0) -> None:
        self.received: dict[Signal, list[bytes]] = {signal: [] for signal in SIGNALS}
        self.content_types: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HttpCaptureServer:
        app = web.Application()
        for signal in SIGNALS:
            app.router.add_post(SPECS[signal].url_path, functools.partial(self._export, signal))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, signal: Signal, count: int, timeout_s: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.received[signal]) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {len(self.received[signal])} {signal} request(s), expected {count}")
            await asyncio.sleep(0.02)
        return self.received[signal]

    async def _export(self, signal: Signal, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp inflates a gzip body
        self.received[signal].append(body)
        self.content_types.append(request.content_type)
        return web.Response(body=SPECS[signal].response().SerializeToString(), content_type="application/x-protobuf")
