"""Logs and metrics pass through like traces: the real SDK exporters as clients, each signal to its own downstream
byte for byte, with the same statuses for overload and bad input."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource

from tests.e2e.test_sdk_clients import make_spans
from tests.processor.receivers.otlp.test_grpc_server import retry_delay_s
from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer, HttpCaptureServer
from tests.support.pipeline import grpc_target, http_url, running
from tests.support.process import free_port
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata.signals import SPECS, Signal
from tracejudge.processor.service.config import parse_config
from tracejudge.processor.service.service import Service


def signals_config(traces: str, metrics: str, logs_url: str, queue: str = "{num_consumers: 2}",
                   max_mib: int = 4, pipelines: Sequence[str] = ("traces", "metrics", "logs"), receiver_extra: str = "",
                   extensions: str = "", extensions_listed: Sequence[str] = (), debug: bool = False) -> str:
    """Each signal to a downstream of its own: traces and metrics over OTLP/gRPC, logs over OTLP/HTTP (each also
    to `debug` if asked). `receiver_extra`: more keys for both protocols."""
    exporters = {"traces": "otlp/traces", "metrics": "otlp/metrics", "logs": "otlphttp/logs"}
    listed = "\n".join(f"    {signal}:\n      receivers: [otlp]\n      exporters: [{exporters[signal]}"
                       f"{', debug' if debug else ''}]" for signal in pipelines)
    return f"""
extensions:
{extensions or "  {}"}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0, max_recv_msg_size_mib: {max_mib}{receiver_extra}}}
      http: {{endpoint: 127.0.0.1:0, max_request_body_size: {max_mib * 1024 * 1024}{receiver_extra}}}
exporters:
  otlp/traces:
    endpoint: {traces}
    tls: {{insecure: true}}
  otlp/metrics:
    endpoint: {metrics}
    tls: {{insecure: true}}
    sending_queue: {queue}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 20s}}
  otlphttp/logs:
    endpoint: {logs_url}
    sending_queue: {queue}
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 20s}}
  debug:
    verbosity: detailed
service:
  extensions: [{", ".join(extensions_listed)}]
  telemetry: {{metrics: {{address: "127.0.0.1:0"}}}}
  pipelines:
{listed}
"""


def make_logs() -> list[ReadableLogRecord]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "logging-app"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("shop")
    logger.emit(body="order 42 paid", severity_text="INFO", attributes={"order.id": 42})
    logger.emit(body={"refund": "declined"}, severity_text="WARN", event_name="shop.refund")
    provider.shutdown()
    return list(memory.get_finished_logs())


def make_metrics() -> MetricsData:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": "metered-app"}), metric_readers=[reader])
    meter = provider.get_meter("shop")
    meter.create_counter("orders").add(3, {"region": "eu"})
    meter.create_histogram("checkout.duration", unit="s").record(0.25)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_sdk_exporters_carry_each_signal_to_its_own_downstream_byte_for_byte(transport: str) -> None:
    async with CaptureServer() as traces_down, CaptureServer() as metrics_down, HttpCaptureServer() as logs_down:
        config = signals_config(traces_down.endpoint, metrics_down.endpoint, logs_down.base_url)
        async with running(config) as service:
            spans, logs, metrics = make_spans("all-signals"), make_logs(), make_metrics()
            if transport == "grpc":
                target = f"http://{grpc_target(service)}"
                exporters = [GrpcSpanExporter(endpoint=target, insecure=True),
                             GrpcLogExporter(endpoint=target, insecure=True),
                             GrpcMetricExporter(endpoint=target, insecure=True)]
            else:
                exporters = [HttpSpanExporter(endpoint=http_url(service), compression=Compression.Gzip),
                             HttpLogExporter(endpoint=http_url(service, path="/v1/logs"),
                                             compression=Compression.Gzip),
                             HttpMetricExporter(endpoint=http_url(service, path="/v1/metrics"))]
            # The SDK exporters block; the receiver shares this event loop, so export from threads.
            for exporter, batch in zip(exporters, (spans, logs, metrics), strict=True):
                result = await asyncio.to_thread(exporter.export, batch)  # type: ignore[attr-defined]
                assert result.name == "SUCCESS"
                exporter.shutdown()  # type: ignore[attr-defined]
            await traces_down.wait_for_requests(1)
            await metrics_down.wait_for_requests(1, signal="metrics")
            assert await logs_down.wait_for("logs", 1) == [encode_logs(logs).SerializeToString()]
            assert traces_down.requests == [encode_spans(spans).SerializeToString()]
            assert metrics_down.received["metrics"] == [encode_metrics(metrics).SerializeToString()]
            # each downstream got its own signal only
            assert (traces_down.received["logs"], traces_down.received["metrics"], metrics_down.requests,
                    logs_down.received["traces"]) == ([], [], [], [])
            labels = {"receiver": "otlp", "transport": transport}
            assert metric(service, "tracejudge_receiver_accepted_log_records_total", **labels) == 2
            assert metric(service, "tracejudge_receiver_accepted_metric_points_total", **labels) == 2
            assert metric(service, "tracejudge_exporter_sent_log_records_total", exporter="otlphttp/logs") == 2


def non_canonical_logs() -> bytes:
    """A valid request whose bytes protobuf would not write itself (a record's fields out of order): forwarding
    it unchanged proves nothing was re-encoded."""
    record = (LogRecord(body={"string_value": "first the body"}).SerializeToString()
              + LogRecord(time_unix_nano=1_700_000_000_000_000_000, trace_id=b"\x01" * 16,
                          span_id=b"\x02" * 8).SerializeToString())
    scope = b"\x12" + _varint(len(record)) + record  # ScopeLogs.log_records = 2
    resource = b"\x12" + _varint(len(scope)) + scope  # ResourceLogs.scope_logs = 2
    payload = b"\x0a" + _varint(len(resource)) + resource  # ExportLogsServiceRequest.resource_logs = 1
    parsed = ExportLogsServiceRequest.FromString(payload)
    assert parsed.resource_logs[0].scope_logs[0].log_records[0].body.string_value == "first the body"
    assert parsed.SerializeToString() != payload
    return payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def grpc_export(service: Service, signal: Signal, payload: bytes, token: str = "") -> bytes:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(grpc_target(service)) as channel:
        reply: bytes = await channel.unary_unary(SPECS[signal].grpc_method)(payload, timeout=10, metadata=metadata)
        return reply


async def http_export(service: Service, signal: Signal, body: bytes, content_type: str = "application/x-protobuf",
                      encoding: str = "", token: str = "") -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": content_type, **({"Content-Encoding": encoding} if encoding else {}),
               **({"Authorization": f"Bearer {token}"} if token else {})}
    async with aiohttp.ClientSession() as session, session.post(
            http_url(service, path=SPECS[signal].url_path), data=io.BytesIO(body), headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


async def test_logs_are_forwarded_as_received_not_re_encoded() -> None:
    payload = non_canonical_logs()
    async with CaptureServer() as grpc_down, HttpCaptureServer() as logs_down, \
            running(signals_config(grpc_down.endpoint, grpc_down.endpoint, logs_down.base_url)) as service:
        await grpc_export(service, "logs", payload)
        status, _, _ = await http_export(service, "logs", gzip.compress(payload), encoding="gzip")
        assert status == 200
        assert await logs_down.wait_for("logs", 2) == [payload, payload]


async def test_json_metrics_and_logs_are_forwarded_as_protobuf_and_debug_logs_them(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tracejudge.debug")
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "orders", "sum": {"dataPoints": [
        {"asInt": "3", "timeUnixNano": "1700000000000000000"}, {"asInt": "4"}], "isMonotonic": True,
        "aggregationTemporality": 2}}]}]}]}
    record = {"traceId": "01" * 16, "spanId": "02" * 8, "eventName": "shop.refund", "body": {"stringValue": "declined"}}
    log_records = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    async with CaptureServer() as grpc_down, HttpCaptureServer() as logs_down, running(signals_config(
            grpc_down.endpoint, grpc_down.endpoint, logs_down.base_url, debug=True)) as service:
        for signal, document in (("metrics", metrics), ("logs", log_records)):
            status, _, body = await http_export(service, signal, json.dumps(document).encode(), "application/json")
            assert (status, json.loads(body)) == (200, {})
        await grpc_down.wait_for_requests(1, signal="metrics")
        expected = ExportMetricsServiceRequest()
        json_format.ParseDict(metrics, expected)
        assert grpc_down.received["metrics"] == [expected.SerializeToString()]
        forwarded = ExportLogsServiceRequest.FromString((await logs_down.wait_for("logs", 1))[0])
        received = forwarded.resource_logs[0].scope_logs[0].log_records[0]
        assert (received.trace_id, received.span_id, received.event_name) == (b"\x01" * 16, b"\x02" * 8,
                                                                              "shop.refund")
    logged = [r.getMessage() for r in caplog.records if r.name == "tracejudge.debug"]
    assert any(line.startswith("debug: 2 data point(s)") for line in logged)
    assert any("1 log record(s)" in line for line in logged)
    assert any(f"log record {'01' * 16}/{'02' * 8} shop.refund" in line and "declined" in line for line in logged)
    assert any("metric orders (sum)" in line for line in logged)


async def test_auth_guards_metrics_and_logs_as_it_guards_traces() -> None:
    auth = ", auth: {authenticator: bearertokenauth}"
    async with CaptureServer() as grpc_down, HttpCaptureServer() as logs_down, running(signals_config(
            grpc_down.endpoint, grpc_down.endpoint, logs_down.base_url, receiver_extra=auth,
            extensions="  bearertokenauth:\n    token: s3cret\n", extensions_listed=["bearertokenauth"])) as service:
        metrics = encode_metrics(make_metrics()).SerializeToString()
        logs = encode_logs(make_logs()).SerializeToString()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await grpc_export(service, "metrics", metrics, token="wrong")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await http_export(service, "logs", logs))[0] == 401
        await grpc_export(service, "metrics", metrics, token="s3cret")
        assert (await http_export(service, "logs", logs, token="s3cret"))[0] == 200
        await grpc_down.wait_for_requests(1, signal="metrics")
        assert await logs_down.wait_for("logs", 1) == [logs]
        assert grpc_down.received["metrics"] == [metrics]


async def test_a_logs_queue_on_disk_has_a_file_of_its_own_and_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    config = signals_config("127.0.0.1:9", "127.0.0.1:9", f"http://127.0.0.1:{port}", pipelines=["traces", "logs"],
                            queue="{storage: file_storage}", extensions_listed=["file_storage"],
                            extensions=f"  file_storage:\n    directory: {tmp_path}\n    reserve_mib: 0\n")
    logs = encode_logs(make_logs()).SerializeToString()
    async with running(config) as service:  # the logs backend is down: the request stays queued on disk
        assert (await http_export(service, "logs", logs))[0] == 200
    rows = sqlite3.connect(tmp_path / "otlphttp_logs_logs_queue.db").execute("SELECT count(*) FROM queue")
    assert rows.fetchone() == (1,)
    async with HttpCaptureServer(port) as logs_down, running(config):
        assert await logs_down.wait_for("logs", 1) == [logs]


async def test_a_full_sending_queue_refuses_metrics_and_logs_as_retryable() -> None:
    async with CaptureServer() as grpc_down:
        config = signals_config(grpc_down.endpoint, grpc_down.endpoint, "http://127.0.0.1:9",
                                queue="{queue_size: 1, num_consumers: 1}")
        grpc_down.hold()  # the metrics exporter's one consumer waits on its first request
        async with running(config) as service:
            metrics = encode_metrics(make_metrics()).SerializeToString()
            await grpc_export(service, "metrics", metrics)  # taken by the consumer, held downstream
            await grpc_export(service, "metrics", metrics)  # fills the queue
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await grpc_export(service, "metrics", metrics)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert retry_delay_s(refused.value) is not None
            # logs: port 9 refuses connections, so the one consumer retries its first request meanwhile
            logs = encode_logs(make_logs()).SerializeToString()
            statuses = [(await http_export(service, "logs", logs))[:2] for _ in range(3)]
            assert [status for status, _ in statuses] == [200, 200, 503]
            assert "Retry-After" in statuses[2][1]
            assert metric(service, "tracejudge_exporter_enqueue_failed_metric_points_total",
                          exporter="otlp/metrics") == 2
            assert metric(service, "tracejudge_receiver_refused_log_records_total", receiver="otlp",
                          transport="http", reason="overloaded") == 2
            grpc_down.release()
            await grpc_down.wait_for_requests(2, signal="metrics")
            assert grpc_down.received["metrics"] == [metrics, metrics]
            await service.shutdown()


async def test_bad_metrics_and_logs_get_otlp_statuses() -> None:
    async with CaptureServer() as grpc_down, HttpCaptureServer() as logs_down, \
            running(signals_config(grpc_down.endpoint, grpc_down.endpoint, logs_down.base_url, max_mib=1)) as service:
        for signal in ("metrics", "logs"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await grpc_export(service, signal, b"\x0a\xff\xff\xff\xff\x0f garbage")
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            status, _, body = await http_export(service, signal, b"{not json", "application/json")
            assert status == 400 and b"not valid JSON" in body
            with pytest.raises(grpc.aio.AioRpcError) as too_big:
                await grpc_export(service, signal, b"\x0a" + _varint(2 * 1024 * 1024) + b"x" * 2 * 1024 * 1024)
            assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            status, _, _ = await http_export(service, signal, b"x" * (2 * 1024 * 1024))
            assert status == 413
        # a log record whose ids cannot be a span's is rejected alone (OTLP partial success)
        good = {"traceId": "01" * 16, "spanId": "02" * 8, "body": {"stringValue": "kept"}}
        bad = {"traceId": "0102", "body": {"stringValue": "rejected"}}
        document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [good, bad]}]}]}
        status, _, body = await http_export(service, "logs", json.dumps(document).encode(), "application/json")
        assert status == 200
        assert json.loads(body)["partialSuccess"]["rejectedLogRecords"] == "1"
        forwarded = ExportLogsServiceRequest.FromString((await logs_down.wait_for("logs", 1))[0])
        records = forwarded.resource_logs[0].scope_logs[0].log_records
        assert [r.body.string_value for r in records] == ["kept"]
        reply = ExportLogsServiceResponse.FromString(await grpc_export(service, "logs", ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[
                LogRecord(span_id=b"\x01" * 3, body={"string_value": "bad id"})])])]).SerializeToString()))
        assert reply.partial_success.rejected_log_records == 1


async def test_a_signal_without_a_pipeline_is_not_served() -> None:
    async with CaptureServer() as grpc_down:
        config = signals_config(grpc_down.endpoint, grpc_down.endpoint, "http://127.0.0.1:9", pipelines=["traces"])
        async with running(config) as service:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await grpc_export(service, "logs", encode_logs(make_logs()).SerializeToString())
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            status, _, _ = await http_export(service, "metrics", b"")
            assert status == 404


@pytest.mark.parametrize(("change", "expected"), [
    (("exporters: [otlphttp/logs]", "exporters: [phoenix]"),
     "service.pipelines.logs.exporters: 'phoenix' does not take logs (it takes traces)"),
    (("endpoint: http://127.0.0.1:9\n", "traces_endpoint: http://127.0.0.1:9/v1/traces\n"),
     "exporters.otlphttp/logs: it is in a logs pipeline: set endpoint or logs_endpoint"),
])
def test_an_exporter_that_cannot_carry_a_signal_is_a_config_error(change: tuple[str, str], expected: str) -> None:
    text = signals_config("127.0.0.1:9", "127.0.0.1:9", "http://127.0.0.1:9")
    text = text.replace(*change).replace("exporters:\n", "exporters:\n  phoenix:\n    endpoint: http://127.0.0.1:9\n",
                                         1)
    with pytest.raises(ConfigError) as error:
        Service(parse_config(text, {}))
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems
