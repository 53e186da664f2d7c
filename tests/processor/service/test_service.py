"""The service as a user runs it: the CLI, health check, TLS on both receivers, decision records on disk."""

from __future__ import annotations

import os
import sqlite3
import ssl
import subprocess
from pathlib import Path

import aiohttp
import grpc
import pytest

from tests.processor.processors.judge_queue.test_stage import judging_config
from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, grpc_target, running
from tests.support.process import TRACEJUDGE
from tests.support.requests import export_request
from tests.support.shipped import SHIPPED, environment
from tests.support.waiting import eventually
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.host import ComponentStatus
from tracejudge.processor.service.config import parse_config

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def test_validate_reports_every_problem_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHIPPED.read_text().replace("verbosity: normal", "verbosity: loud")
                   .replace("      exporters: [debug]", "      exporters: [debug, otlp/missing]"))
    result = subprocess.run([*TRACEJUDGE, "validate", "--config", str(bad)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "exporters.debug.verbosity: must be one of basic, normal, detailed" in result.stderr
    assert "service.pipelines.traces.exporters: 'otlp/missing' is not defined under exporters" in result.stderr
    ok = subprocess.run([*TRACEJUDGE, "validate", "--config", "otel-config.yaml"], capture_output=True, text=True,
                        check=False)
    assert ok.returncode == 0, ok.stderr


def test_the_shipped_config_carries_all_three_signals_from_one_receiver_to_debug() -> None:
    """An SDK pointed at tracejudge sends traces, metrics and logs; the logs share the traces' receiver, so LLM
    content in log records reaches llm_extract (tests/e2e/test_log_content.py runs it)."""
    pipelines = parse_config(SHIPPED.read_text(), environment()).service.pipelines
    assert {name: (spec.receivers, spec.exporters) for name, spec in pipelines.items()} == {
        signal: (("otlp",), ("debug",)) for signal in ("traces", "metrics", "logs")}
    assert pipelines["logs"].processors == pipelines["metrics"].processors == ("memory_limiter",)


def test_serve_runs_the_shipped_config_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, **environment(), "TRACEJUDGE_DATA_DIR": str(tmp_path / "data")}
    config = tmp_path / "otel-config.yaml"
    config.write_text(SHIPPED.read_text())
    process = subprocess.Popen([*TRACEJUDGE, "serve", "--config", str(config)], env=env, text=True,
                               stderr=subprocess.PIPE)
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "tracejudge is running" in line:
            break
    process.terminate()
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(lines) + rest
    assert any("OTLP/gRPC on port" in line for line in lines)
    assert any("EvalService: gRPC on port" in line for line in lines)
    assert (tmp_path / "data" / "decisions.db").exists() and (tmp_path / "data" / "judge_queue.db").exists()


async def test_the_shipped_config_judges_out_of_the_box_with_no_server_and_no_key(tmp_path: Path) -> None:
    environ = {**environment(), "TRACEJUDGE_DATA_DIR": str(tmp_path), "TRACEJUDGE_SAMPLE_RATE": "1",
               # the limit is for a process of its own; this one holds every test's memory too
               "TRACEJUDGE_MEMORY_LIMIT_MIB": "65536"}
    text = SHIPPED.read_text()
    request = export_request(spans=1, llm_every=1)  # a root LLM span: the trace is complete once it arrives
    span = request.resource_spans[0].scope_spans[0].spans[0]
    async with running(text, environ) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
        await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)

        async def fates() -> set[tuple[str, str]]:
            return {(d.decision, d.metric) for d in await service.decisions.for_trace(span.trace_id.hex())}

        async def judged() -> bool:
            return ("judged", "relevancy") in await fates()

        await eventually(judged, timeout_s=20, what="the relevancy of the LLM span judged")
        # No retrieved documents: faithfulness is recorded as not judgeable rather than guessed.
        assert ("unjudged: no_context", "faithfulness") in await fates()


async def test_health_check_is_200_while_running() -> None:
    config = forwarding_config("127.0.0.1:1", extensions="  health_check:\n    endpoint: 127.0.0.1:0",
                               service_extensions="[health_check]")
    async with running(config) as service, aiohttp.ClientSession() as session:
        port = service.extensions["health_check"].port
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "Server available"


async def test_a_degraded_component_is_named_by_the_health_check_and_fails_it_only_if_configured() -> None:
    for fail, expected in ((False, 200), (True, 503)):
        config = forwarding_config(
            "127.0.0.1:1", extensions=f"  health_check:\n    endpoint: 127.0.0.1:0\n    fail_when_degraded: {fail}",
            service_extensions="[health_check]")
        async with running(config) as service, aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{service.extensions['health_check'].port}/"
            service.status.set_degraded("exporters/otlp", "the sending queue cannot be written")
            async with session.get(url) as response:
                assert response.status == expected
                assert (await response.json())["degraded"] == {"exporters/otlp": "the sending queue cannot be written"}
            assert metric(service, "tracejudge_component_degraded", component="exporters/otlp") == 1
            service.status.set_ok("exporters/otlp")
            async with session.get(url) as response:
                assert response.status == 200 and "degraded" not in await response.json()
            assert metric(service, "tracejudge_component_degraded", component="exporters/otlp") == 0


async def test_an_exporter_that_cannot_deliver_is_degraded_from_its_first_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    """Not minutes later when retries give up: the health check names it, /metrics gauges it, the log says it once."""
    async with CaptureServer() as downstream:
        downstream.fail_next(grpc.StatusCode.UNAVAILABLE, times=1000)
        config = forwarding_config(downstream.endpoint, extensions="  health_check:\n    endpoint: 127.0.0.1:0",
                                   service_extensions="[health_check]")
        async with running(config) as service, aiohttp.ClientSession() as session, \
                grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary(EXPORT)(export_request(spans=2).SerializeToString(), timeout=10)
            await eventually(lambda: downstream.calls >= 3, what="three failed attempts")
            async with session.get(f"http://127.0.0.1:{service.extensions['health_check'].port}/") as response:
                assert response.status == 200  # a backend's trouble does not fail the health check by default
                degraded = (await response.json())["degraded"]
            assert degraded == {"exporters/otlp sending": f"cannot deliver: {downstream.endpoint}: UNAVAILABLE: "
                                                          "scripted fault"}
            assert metric(service, "tracejudge_component_degraded", component="exporters/otlp sending") == 1
    warnings = [r.getMessage() for r in caplog.records if "exporters/otlp sending is degraded" in r.getMessage()]
    assert len(warnings) == 1  # however many attempts failed


async def test_an_exporter_recovers_once_a_delivery_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service, \
            grpc.aio.insecure_channel(grpc_target(service)) as channel:
        downstream.fail_next(grpc.StatusCode.UNAVAILABLE, times=3)
        await channel.unary_unary(EXPORT)(export_request(spans=2).SerializeToString(), timeout=10)
        await downstream.wait_for_requests(1)
        await eventually(lambda: "exporters/otlp sending" not in service.status.degraded, what="recovered")
        assert metric(service, "tracejudge_component_degraded", component="exporters/otlp sending") == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("exporters/otlp sending")]
    assert said == ["exporters/otlp sending is degraded: cannot deliver: "
                    f"{downstream.endpoint}: UNAVAILABLE: scripted fault", "exporters/otlp sending has recovered"]


def test_a_reason_that_keeps_changing_is_logged_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    status = ComponentStatus(clock=lambda: now[0])
    for second in range(0, 130, 10):
        now[0] = float(second)
        status.set_degraded("exporters/otlp sending", f"attempt at {second} s failed")
    assert [r.getMessage() for r in caplog.records] == [
        f"exporters/otlp sending is degraded: attempt at {s} s failed" for s in (0, 60, 120)]
    assert status.degraded == {"exporters/otlp sending": "attempt at 120 s failed"}


async def test_decision_records_are_kept_per_trace(tmp_path: Path) -> None:
    request = export_request(spans=4, llm_every=2)
    silent = request.resource_spans[0].scope_spans[0].spans[2]  # an LLM span whose content was not captured
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        index = next(i for i, kv in enumerate(silent.attributes) if kv.key == key)
        del silent.attributes[index]
    async with CaptureServer() as downstream:
        config = forwarding_config(downstream.endpoint, extensions=f"  file_storage:\n    directory: {tmp_path}",
                                   service_extensions="[file_storage]")
        async with running(config) as service, \
                grpc.aio.insecure_channel(f"127.0.0.1:{service.receivers['otlp'].grpc.port}") as channel:
            await channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)
        await downstream.wait_for_requests(1)
    db = sqlite3.connect(tmp_path / "decisions.db")
    rows = db.execute("SELECT span_id, decision, convention, model FROM decisions ORDER BY span_id").fetchall()
    spans = request.resource_spans[0].scope_spans[0].spans
    assert rows == [(spans[0].span_id.hex(), "extracted", "gen_ai", "gpt-4o-mini-2024-07-18"),
                    (spans[2].span_id.hex(), "not judgeable: no content", "gen_ai", "gpt-4o-mini-2024-07-18")]


async def test_tls_on_both_receivers(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    tls = f"        tls: {{cert_file: {cert}, key_file: {key}}}"
    async with CaptureServer() as downstream:
        config = forwarding_config(downstream.endpoint, grpc_extra=tls, http_extra=tls)
        async with running(config) as service:
            grpc_port, http_port = service.receivers["otlp"].grpc.port, service.receivers["otlp"].http.port
            credentials = grpc.ssl_channel_credentials(root_certificates=Path(cert).read_bytes())
            async with grpc.aio.secure_channel(f"localhost:{grpc_port}", credentials) as channel:
                await channel.unary_unary(EXPORT)(export_request().SerializeToString(), timeout=10)
            context = ssl.create_default_context(cafile=cert)
            async with aiohttp.ClientSession() as session, session.post(
                    f"https://localhost:{http_port}/v1/traces", data=export_request().SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"}, ssl=context) as response:
                assert response.status == 200
            await downstream.wait_for_requests(2)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as plaintext:
                with pytest.raises(grpc.aio.AioRpcError):
                    await plaintext.unary_unary(EXPORT)(export_request().SerializeToString(), timeout=2)
            assert len(downstream.requests) == 2


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_a_port_in_use_is_a_clear_error_not_shared_traffic(transport: str) -> None:
    async with running(forwarding_config("127.0.0.1:1")) as first:
        taken = getattr(first.receivers["otlp"], transport).port
        config = forwarding_config("127.0.0.1:1")
        config = config.replace(f"      {transport}:\n        endpoint: 127.0.0.1:0",
                                f"      {transport}:\n        endpoint: 127.0.0.1:{taken}")
        with pytest.raises(OSError, match=str(taken) if transport == "grpc" else "in use"):
            async with running(config):
                pass


async def test_delivered_waits_until_the_exporters_have_sent_what_they_accepted() -> None:
    async with CaptureServer() as downstream, running(forwarding_config(downstream.endpoint)) as service, \
            grpc.aio.insecure_channel(grpc_target(service)) as channel:
        downstream.hold()
        await channel.unary_unary(EXPORT)(export_request(spans=3).SerializeToString(), timeout=10)
        assert await service.delivered(timeout_s=0.3) == 1  # accepted, not yet delivered
        downstream.release()
        assert await service.delivered(timeout_s=10) == 0
        assert len(downstream.requests) == 1


async def test_admin_routes_require_the_configured_token_and_metrics_stay_open(tmp_path: Path) -> None:
    config = judging_config("127.0.0.1:1", "http://127.0.0.1:1/v1", tmp_path, local="none",
                            metrics_address="127.0.0.1:0").replace(
        "extensions:\n  file_storage:", "extensions:\n  bearertokenauth: {token: s3cret}\n  file_storage:").replace(
        "  extensions: [file_storage]", "  extensions: [file_storage, bearertokenauth]").replace(
        '      address: "127.0.0.1:0"', '      address: "127.0.0.1:0"\n      auth: {authenticator: bearertokenauth}')
    async with running(config) as service, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{service.metrics_port}"
        async with session.post(f"{base}/judge/tiers/heavy/resume") as response:
            assert response.status == 401
        async with session.post(f"{base}/judge/tiers/heavy/resume", headers={"Authorization": "Bearer s3cret"}
                                ) as response:
            assert response.status == 200
        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200


def test_admin_auth_must_name_a_listed_authenticator(tmp_path: Path) -> None:
    config = judging_config("127.0.0.1:1", "http://127.0.0.1:1/v1", tmp_path, local="none",
                            metrics_address="127.0.0.1:0").replace(
        '      address: "127.0.0.1:0"', '      address: "127.0.0.1:0"\n      auth: {authenticator: file_storage}')
    with pytest.raises(ConfigError, match=r"service\.telemetry\.metrics\.auth\.authenticator: 'file_storage' must "
                                          "be a bearertokenauth extension"):
        parse_config(config, {})
