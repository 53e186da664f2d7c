"""Alerts as spans: each `stats` alert becomes one `tracejudge.alert` span of its own trace, with the alert's
attributes, span links to the example traces and, from `stats.trace_links`, the URLs that open them in the user's
trace UIs, so it reaches every exporter of the pipeline and sits next to the traces it points at. Its resource is
service `tracejudge` (the app's error rates and service graphs stay the app's) in the Phoenix project of the
series' service; its kind is OpenInference EVALUATOR, not LLM. Ids derive from the alert id: exporting an alert
again (after a crash) gives the same span."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from tracejudge.processor.pdata.evaluation_events import PHOENIX_PROJECT, SERVICE_NAME, Plain, set_value
from tracejudge.stats.records import Alert

ALERT_SPAN_NAME = "tracejudge.alert"
SCOPE_NAME = "tracejudge.stats"


@dataclass(frozen=True)
class ExampleLink:
    trace_id: str
    span_id: str
    urls: dict[str, str]  # trace UI name → URL


def example_links(alert: Alert, templates: Mapping[str, str], project: str) -> list[ExampleLink]:
    """Each example trace with its URL in every configured trace UI ({trace_id}, {span_id}, {project})."""
    return [ExampleLink(trace, span, {name: template.format(trace_id=trace, span_id=span, project=project)
                                      for name, template in templates.items()})
            for trace, span in alert.examples]


def alert_attributes(alert: Alert, links: Sequence[ExampleLink] = ()) -> dict[str, Plain]:
    attributes: dict[str, Plain] = {
        "openinference.span.kind": "EVALUATOR",
        "tracejudge.alert.id": alert.alert_id, "tracejudge.alert.cause": alert.cause,
        "tracejudge.alert.detector": alert.detector, "tracejudge.alert.summary": alert.summary,
        "tracejudge.alert.series": str(alert.series), "tracejudge.alert.baseline": alert.baseline,
        "tracejudge.alert.current": alert.current, "tracejudge.alert.n_baseline": alert.n_baseline,
        "tracejudge.alert.n_current": alert.n_current, "tracejudge.alert.service": alert.series.service,
        "tracejudge.alert.prompt_version": alert.series.prompt_version,
        "tracejudge.alert.model": alert.series.model, "tracejudge.alert.metric": alert.series.metric,
        "tracejudge.alert.example_traces": " ".join(trace for trace, _ in alert.examples),
    }
    if any(link.urls for link in links):
        attributes["tracejudge.alert.links"] = "\n".join(url for link in links for url in link.urls.values())
    for name in ("effect", "ci_low", "ci_high", "p_value"):
        value = getattr(alert, name)
        if value is not None:
            attributes[f"tracejudge.alert.{name}"] = float(value)
    return attributes


def alert_message(alert: Alert) -> str:
    """One line that says which series moved, why, and by how much."""
    return f"{alert.series} [{alert.cause}]: {alert.summary}"


def webhook_body(alert: Alert, templates: Mapping[str, str], project: str) -> str:
    """The alert's JSON, with the message, the project and the links to its example traces."""
    document = json.loads(alert.to_json())
    document.update(message=alert_message(alert), project=project,
                    example_links=[dataclasses.asdict(link) for link in example_links(alert, templates, project)])
    return json.dumps(document, sort_keys=True)


def alert_request(alerts: Sequence[Alert], templates: Mapping[str, str] | None = None,
                  projects: Mapping[str, str] | None = None, scope_version: str = "") -> ExportTraceServiceRequest:
    """`projects`: the Phoenix project of each service's traces (none: Phoenix's default)."""
    request = ExportTraceServiceRequest()
    scopes: dict[str, ScopeSpans] = {}
    for alert in alerts:
        project = (projects or {}).get(alert.series.service, "")
        if project not in scopes:
            resource_spans = request.resource_spans.add()
            set_value(resource_spans.resource.attributes.add(key="service.name"), SERVICE_NAME)
            if project:
                set_value(resource_spans.resource.attributes.add(key=PHOENIX_PROJECT), project)
            scopes[project] = resource_spans.scope_spans.add()
            scopes[project].scope.name = SCOPE_NAME
            scopes[project].scope.version = scope_version
        identity = hashlib.blake2b(alert.alert_id.encode(), digest_size=24).digest()
        span = scopes[project].spans.add(trace_id=identity[:16], span_id=identity[16:], name=ALERT_SPAN_NAME,
                                         kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=alert.time_unix_nano,
                                         end_time_unix_nano=alert.time_unix_nano)
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = alert_message(alert)
        for name, value in alert_attributes(alert, example_links(alert, templates or {}, project)).items():
            set_value(span.attributes.add(key=name), value)
        for rank, (trace_id, span_id) in enumerate(alert.examples, start=1):
            link = span.links.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id))
            set_value(link.attributes.add(key="tracejudge.alert.example_rank"), rank)
    return request
