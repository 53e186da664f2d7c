"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP in front of one pipeline."""

from __future__ import annotations

import logging

from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.consumer import TracesConsumer
from tracejudge.processor.receivers.otlp.config import OtlpReceiverConfig
from tracejudge.processor.receivers.otlp.grpc_server import GrpcTransport
from tracejudge.processor.receivers.otlp.http_server import HttpTransport
from tracejudge.processor.receivers.otlp.intake import Intake, ReceiverMetrics
from tracejudge.processor.transport.auth import AuthConfig, Authenticator

log = logging.getLogger("tracejudge")


class OtlpReceiver:
    def __init__(self, settings: CreateSettings, config: OtlpReceiverConfig, next_consumer: TracesConsumer) -> None:
        host, name = settings.host, settings.name
        self._name = name
        intake = Intake(name, next_consumer, host.telemetry.metrics(ReceiverMetrics))

        def authenticator(auth: AuthConfig | None) -> Authenticator | None:
            return None if auth is None else host.find("extensions", "authenticator", auth.authenticator)

        grpc, http = config.protocols.grpc, config.protocols.http
        self.grpc = None if grpc is None else GrpcTransport(name, grpc, intake, authenticator(grpc.auth))
        self.http = None if http is None else HttpTransport(name, http, intake, authenticator(http.auth))

    async def start(self) -> None:
        try:
            if self.grpc is not None:
                await self.grpc.start()
                log.info("receiver %s: OTLP/gRPC on port %d", self._name, self.grpc.port)
            if self.http is not None:
                await self.http.start()
                log.info("receiver %s: OTLP/HTTP on port %d", self._name, self.http.port)
        except BaseException:
            await self.shutdown()
            raise

    async def shutdown(self) -> None:
        if self.http is not None:
            await self.http.shutdown()
        if self.grpc is not None:
            await self.grpc.shutdown()
