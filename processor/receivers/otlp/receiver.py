"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP in front of one pipeline."""

from __future__ import annotations

from tracejudge.processor.component.consumer import TracesConsumer
from tracejudge.processor.component.telemetry import Telemetry
from tracejudge.processor.extensions.bearertokenauth import Authenticator
from tracejudge.processor.receivers.otlp.config import OtlpReceiverConfig
from tracejudge.processor.receivers.otlp.grpc_server import GrpcTransport
from tracejudge.processor.receivers.otlp.http_server import HttpTransport
from tracejudge.processor.receivers.otlp.intake import Intake


class OtlpReceiver:
    def __init__(self, name: str, config: OtlpReceiverConfig, next_consumer: TracesConsumer,
                 telemetry: Telemetry, authenticators: dict[str, Authenticator]) -> None:
        intake = Intake(name, next_consumer, telemetry)
        grpc, http = config.protocols.grpc, config.protocols.http
        self.grpc = None if grpc is None else GrpcTransport(
            name, grpc, intake, authenticators[grpc.auth.authenticator] if grpc.auth else None)
        self.http = None if http is None else HttpTransport(
            name, http, intake, authenticators[http.auth.authenticator] if http.auth else None)

    async def start(self) -> None:
        try:
            if self.grpc is not None:
                await self.grpc.start()
            if self.http is not None:
                await self.http.start()
        except BaseException:
            await self.shutdown()
            raise

    async def shutdown(self) -> None:
        if self.http is not None:
            await self.http.shutdown()
        if self.grpc is not None:
            await self.grpc.shutdown()
