"""A no-op OTLP/gRPC trace server: the reference to compare tracejudge with, and the downstream it forwards to.

It registers the generated TraceServiceServicer (so requests are parsed, as any real backend must) and answers
with an empty ExportTraceServiceResponse. It counts the spans it received, leaving out tracejudge's own
(evaluation and alert spans), so that the count is of the load's spans; `/bench.Counter/Spans` returns it as ASCII.
Run: `python -m bench.noop_server --port 0`; it prints `port N` once serving.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

__all__ = ["COUNTER_METHOD", "NoopTraceService"]

COUNTER_METHOD = "/bench.Counter/Spans"
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class NoopTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0

    async def Export(self, request: ExportTraceServiceRequest,
                     context: grpc.aio.ServicerContext) -> ExportTraceServiceResponse:
        self.spans += sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
                          if not _tracejudges_own(resource))
        return ExportTraceServiceResponse()

    async def count(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return str(self.spans).encode()


def _tracejudges_own(resource: ResourceSpans) -> bool:
    """Spans tracejudge makes itself (evaluation and alert spans, service `tracejudge`): not the load's."""
    return any(a.key == "service.name" and a.value.string_value == "tracejudge" for a in resource.resource.attributes)


async def serve(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)])
    service = NoopTraceService()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    service_name, method = COUNTER_METHOD.strip("/").split("/")
    counter = grpc.unary_unary_rpc_method_handler(service.count)  # raw bytes both ways
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, {method: counter}),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"port {bound}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
