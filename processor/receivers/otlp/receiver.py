"""The `otlp` receiver: OTLP/gRPC and OTLP/HTTP in front of one pipeline per signal."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.consumer import Consumer
from tracejudge.processor.pdata.signals import Signal
from tracejudge.processor.receivers.otlp.config import OtlpReceiverConfig
from tracejudge.processor.receivers.otlp.grpc_server import GrpcTransport
from tracejudge.processor.receivers.otlp.http_server import HttpTransport
from tracejudge.processor.receivers.otlp.intake import Intake, ReceiverMetrics
from tracejudge.processor.transport.auth import AuthConfig, Authenticator

log = logging.getLogger("tracejudge")


class OtlpReceiver:
    """`consumers`: the head of the pipeline of each signal this receiver feeds (a signal without one is not served:
    gRPC UNIMPLEMENTED, HTTP 404)."""

    def __init__(self, settings: CreateSettings, config: OtlpReceiverConfig,
                 consumers: Mapping[Signal, Consumer]) -> None:
        host, name = settings.host, settings.name
        self._name = name
        metrics = host.telemetry.metrics(ReceiverMetrics)
        intakes = {signal: Intake(name, signal, consumer, metrics) for signal, consumer in consumers.items()}

        def authenticator(auth: AuthConfig | None) -> Authenticator | None:
            return None if auth is None else host.find("extensions", "authenticator", auth.authenticator)

        grpc, http = config.protocols.grpc, config.protocols.http
        self.grpc = None if grpc is None else GrpcTransport(name, grpc, intakes, authenticator(grpc.auth))
        self.http = None if http is None else HttpTransport(name, http, intakes, authenticator(http.auth))

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
