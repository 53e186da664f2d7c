"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP in front of one pipeline."""

from __future__ import annotations

from .auth import Authenticator
from .consumer import TracesConsumer
from .intake import Intake
from .receiver_config import OtlpReceiverConfig
from .receiver_grpc import GrpcTransport
from .receiver_http import HttpTransport
from .telemetry import Telemetry


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
