"""The three OTLP signals: the messages of each, where it is served and sent, and what its items are called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

Signal = Literal["traces", "metrics", "logs"]
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")


@dataclass(frozen=True)
class SignalSpec:
    name: Signal
    request: type[Message]
    response: type[Message]
    grpc_service: str
    url_path: str  # the OTLP/HTTP path, under a receiver and after an exporter's base endpoint
    items: str  # what the Collector calls its items in metric names: spans, metric_points, log_records
    noun: str  # one item, in messages
    rejected_field: str  # of the response's partial_success

    @property
    def grpc_method(self) -> str:
        return f"/{self.grpc_service}/Export"


SPECS: dict[Signal, SignalSpec] = {
    "traces": SignalSpec("traces", ExportTraceServiceRequest, ExportTraceServiceResponse,
                         "opentelemetry.proto.collector.trace.v1.TraceService", "/v1/traces", "spans", "span",
                         "rejected_spans"),
    "metrics": SignalSpec("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse,
                          "opentelemetry.proto.collector.metrics.v1.MetricsService", "/v1/metrics", "metric_points",
                          "data point", "rejected_data_points"),
    "logs": SignalSpec("logs", ExportLogsServiceRequest, ExportLogsServiceResponse,
                       "opentelemetry.proto.collector.logs.v1.LogsService", "/v1/logs", "log_records", "log record",
                       "rejected_log_records"),
}
