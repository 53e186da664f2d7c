"""Alerts as spans: each `stats` alert becomes one `tracejudge.alert` span of its own trace (service `tracejudge`),
with the alert's attributes and span links to the example traces, so it reaches every exporter of the pipeline and
sits in Jaeger or Phoenix next to the traces it points at. Ids derive from the alert id: exporting an alert again
(after a crash) gives the same span."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracejudge.processor.pdata.evaluation_events import SERVICE_NAME, Plain, set_value
from tracejudge.stats.records import Alert

ALERT_SPAN_NAME = "tracejudge.alert"
SCOPE_NAME = "tracejudge.stats"


def alert_attributes(alert: Alert) -> dict[str, Plain]:
    attributes: dict[str, Plain] = {
        "tracejudge.alert.id": alert.alert_id, "tracejudge.alert.cause": alert.cause,
        "tracejudge.alert.detector": alert.detector, "tracejudge.alert.summary": alert.summary,
        "tracejudge.alert.series": str(alert.series), "tracejudge.alert.baseline": alert.baseline,
        "tracejudge.alert.current": alert.current, "tracejudge.alert.n_baseline": alert.n_baseline,
        "tracejudge.alert.n_current": alert.n_current, "tracejudge.alert.service": alert.series.service,
        "gen_ai.prompt.version": alert.series.prompt_version, "gen_ai.request.model": alert.series.model,
        "gen_ai.evaluation.name": alert.series.metric,
    }
    for name in ("effect", "ci_low", "ci_high", "p_value"):
        value = getattr(alert, name)
        if value is not None:
            attributes[f"tracejudge.alert.{name}"] = float(value)
    return attributes


def alert_request(alerts: Sequence[Alert], scope_version: str = "") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if not alerts:
        return request
    resource_spans = request.resource_spans.add()
    set_value(resource_spans.resource.attributes.add(key="service.name"), SERVICE_NAME)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE_NAME
    scope_spans.scope.version = scope_version
    for alert in alerts:
        identity = hashlib.blake2b(alert.alert_id.encode(), digest_size=24).digest()
        span = scope_spans.spans.add(trace_id=identity[:16], span_id=identity[16:], name=ALERT_SPAN_NAME,
                                     kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=alert.time_unix_nano,
                                     end_time_unix_nano=alert.time_unix_nano)
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = f"{alert.cause}: {alert.summary}"
        for name, value in alert_attributes(alert).items():
            set_value(span.attributes.add(key=name), value)
        for rank, (trace_id, span_id) in enumerate(alert.examples, start=1):
            link = span.links.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id))
            set_value(link.attributes.add(key="tracejudge.alert.example_rank"), rank)
    return request
