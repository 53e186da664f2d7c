"""The `debug` exporter: logs what passes through, so the default config runs with no backend at all."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tracejudge.processor.component.factory import EVERY_SIGNAL, Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.consumer import Batch
from tracejudge.processor.pdata.batch import SignalBatch, TraceBatch
from tracejudge.processor.pdata.signals import SPECS

log = logging.getLogger("tracejudge.debug")


@dataclass(frozen=True)
class DebugExporterConfig:
    verbosity: Literal["basic", "normal", "detailed"] = "basic"


class DebugExporter:
    """Logs synchronously in `enqueue`: there is nothing downstream to wait for, so no queue."""

    def __init__(self, settings: CreateSettings, config: DebugExporterConfig) -> None:
        self.name = settings.name
        self._verbosity = config.verbosity

    def has_room(self, batch: Batch) -> bool:
        return True

    def pending(self) -> int:
        return 0

    def withdraw(self, receipt: object) -> None:
        return None  # what was logged stays logged

    def enqueue(self, batch: Batch) -> None:
        if isinstance(batch, SignalBatch):
            self._signal(batch)
            return
        self._traces(batch)

    def _traces(self, batch: TraceBatch) -> None:
        log.info("%s: %d span(s), %d LLM span(s), %d bytes", self.name, batch.span_count, len(batch.llm_spans),
                 len(batch.payload))
        if self._verbosity == "basic":
            return
        for llm in batch.llm_spans:
            log.info("  LLM span %s/%s %s model=%s prompt_version=%s content=%s", llm.trace_id, llm.span_id,
                     llm.convention, llm.response_model or llm.request_model, llm.prompt_version or "-",
                     "yes" if llm.has_content else "no")
        if self._verbosity == "detailed":
            for resource_spans in batch.request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        log.info("  span %s/%s %r attributes=%d", span.trace_id.hex(), span.span_id.hex(),
                                 span.name, len(span.attributes))

    def _signal(self, batch: SignalBatch) -> None:
        log.info("%s: %d %s(s), %d bytes", self.name, batch.item_count, SPECS[batch.signal].noun, len(batch.payload))
        if self._verbosity == "basic":
            return
        request = batch.request
        if isinstance(request, ExportLogsServiceRequest):
            for resource_logs in request.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        log.info("  log record %s/%s %s %s", record.trace_id.hex() or "-", record.span_id.hex() or "-",
                                 record.event_name or record.severity_text or "-",
                                 str(record.body)[:200].strip() if self._verbosity == "detailed" else "")
        elif isinstance(request, ExportMetricsServiceRequest):
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        log.info("  metric %s (%s)", metric.name, metric.WhichOneof("data"))

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


factory = Factory("debug", "exporters", DebugExporterConfig, DebugExporter, signals=EVERY_SIGNAL)
