"""OTLP/gRPC transport: the `Export` method of TraceService, MetricsService and LogsService (those with a pipeline)
on grpc.aio, request bytes taken as they arrive. A signal without a pipeline is UNIMPLEMENTED, as in the Collector."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import grpc

from tracejudge.processor.component.errors import PermanentError
from tracejudge.processor.pdata.otlp_codec import decode_protobuf, encode_response
from tracejudge.processor.pdata.signals import SPECS, Signal
from tracejudge.processor.receivers.otlp.config import GrpcReceiverConfig
from tracejudge.processor.receivers.otlp.intake import Intake
from tracejudge.processor.transport.auth import Authenticator
from tracejudge.processor.transport.status import abort


class GrpcTransport:
    def __init__(self, name: str, config: GrpcReceiverConfig, intakes: Mapping[Signal, Intake],
                 authenticator: Authenticator | None) -> None:
        self._name = name
        self._config = config
        self._intakes = intakes
        self._auth = authenticator
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        limit = self._config.max_recv_msg_size_mib * 1024 * 1024
        # so_reuseport off: a second tracejudge on the same port must fail, not silently share the traffic.
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0)])
        # No deserializer: the handler gets the request's bytes, which are what exporters forward.
        server.add_generic_rpc_handlers(tuple(
            grpc.method_handlers_generic_handler(SPECS[signal].grpc_service, {
                "Export": grpc.unary_unary_rpc_method_handler(functools.partial(self._export, intake))})
            for signal, intake in self._intakes.items()))
        try:
            if self._config.tls is not None:
                self.port = server.add_secure_port(self._config.endpoint, self._config.tls.grpc_credentials())
            else:
                self.port = server.add_insecure_port(self._config.endpoint)
        except RuntimeError as e:  # grpc reports a failed bind as a bare RuntimeError
            raise OSError(f"cannot listen for OTLP/gRPC on {self._config.endpoint} (is the port in use?)") from e
        await server.start()
        self._server = server

    async def shutdown(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=5.0)

    async def _export(self, intake: Intake, payload: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if self._auth is not None:
            try:
                self._auth.authenticate(dict(context.invocation_metadata() or ()).get("authorization"))
            except PermanentError as error:
                intake.refuse("grpc", error.kind)
                await abort(context, error)
        signal = intake.signal
        try:
            decoded = await intake.accept("grpc", lambda: decode_protobuf(payload, self._name, signal), len(payload))
        except Exception as error:  # every refusal, including our own bugs, becomes a status code
            await abort(context, error)
        return encode_response(decoded, False, signal)
