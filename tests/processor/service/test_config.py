"""Configuration: the Collector's shape, env expansion, and one test per rule with the YAML path it names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.process import TRACEJUDGE
from tracejudge.processor.component.confmap import parse_duration
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import KINDS
from tracejudge.processor.exporters.otlp import OtlpExporterConfig
from tracejudge.processor.receivers.otlp.config import OtlpReceiverConfig
from tracejudge.processor.service import factories
from tracejudge.processor.service.config import parse_config

VALID = """
receivers:
  otlp:
    protocols:
      grpc:
      http:
        endpoint: 127.0.0.1:4318
processors:
  llm_extract:
    attributes: {prompt_version: app.prompt.sha}
exporters:
  otlp/jaeger:
    endpoint: ${env:JAEGER:-jaeger:4317}
    tls: {insecure: true}
    timeout: 2s
    headers: {x-team: llm}
    sending_queue: {queue_size: 50, num_consumers: 2}
    retry_on_failure: {initial_interval: 250ms, max_elapsed_time: 1m30s}
  otlphttp/phoenix:
    endpoint: http://phoenix:6006
  debug:
extensions:
  health_check:
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract]
      exporters: [otlp/jaeger, otlphttp/phoenix, debug]
"""


def problems(yaml_text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(yaml_text, environ or {})
    return error.value.problems


def test_valid_config_decodes_into_typed_frozen_settings() -> None:
    config = parse_config(VALID, {})
    receiver = config.receivers["otlp"]
    assert isinstance(receiver, OtlpReceiverConfig)
    assert receiver.protocols.grpc is not None and receiver.protocols.grpc.endpoint == "localhost:4317"
    assert receiver.protocols.http is not None and receiver.protocols.http.endpoint == "127.0.0.1:4318"
    jaeger = config.exporters["otlp/jaeger"]
    assert isinstance(jaeger, OtlpExporterConfig)
    assert (jaeger.endpoint, jaeger.timeout, jaeger.headers) == ("jaeger:4317", 2.0, {"x-team": "llm"})
    assert (jaeger.retry_on_failure.initial_interval, jaeger.retry_on_failure.max_elapsed_time) == (0.25, 90.0)
    with pytest.raises(AttributeError):
        jaeger.timeout = 1.0  # type: ignore[misc]


def test_a_judge_queue_with_tiers_routes_and_limits_decodes() -> None:
    anchor = "    attributes: {prompt_version: app.prompt.sha}\n"
    text = VALID.replace(anchor, anchor + """  judge_queue:
    storage: file_storage
    routes:
      - {name: enterprise, attribute: customer.tier, equals: enterprise}
      - {name: failed, failed_check: true}
    judges:
      heavy:
        judge: openai
        claims: true
        server: {base_url: "http://judge:8000/v1", model: m, timeout: 10s}
        limits: {daily_budget_usd: 5, rate_per_s: 2, pause: 1m}
""").replace("  health_check:\n", "  health_check:\n  file_storage: {directory: /tmp/d}\n")
    stage = parse_config(text.replace("extensions: [health_check]", "extensions: [health_check, file_storage]"),
                         {}).processors["judge_queue"]
    assert [(r.name, r.attribute, r.equals, r.failed_check) for r in stage.routes] == [
        ("enterprise", "customer.tier", "enterprise", False), ("failed", "", "", True)]
    heavy = stage.judges.heavy
    assert (heavy.judge, heavy.claims, heavy.server.timeout, heavy.limits.pause) == ("openai", True, 10.0, 60.0)
    assert stage.judges.local.judge == "embedded"


def test_deepeval_metrics_a_tier_names_can_be_judged() -> None:
    anchor = "    attributes: {prompt_version: app.prompt.sha}\n"
    text = VALID.replace(anchor, anchor + """  judge_queue:
    storage: file_storage
    metrics: [faithfulness, hallucination]
    judges:
      heavy:
        judge: deepeval
        server: {base_url: "http://judge:8000/v1", model: m, max_output_tokens: 1000}
        deepeval:
          metrics: {faithfulness: FaithfulnessMetric, hallucination: HallucinationMetric}
""").replace("  health_check:\n", "  health_check:\n  file_storage: {directory: /tmp/d}\n")
    text = text.replace("extensions: [health_check]", "extensions: [health_check, file_storage]")
    assert parse_config(text, {}).processors["judge_queue"].metrics == ("faithfulness", "hallucination")
    assert problems(text.replace("HallucinationMetric", "GEval")) == [
        "processors.judge_queue.judges.heavy.deepeval.metrics.hallucination: 'GEval' is not a deepeval metric this "
        "judge runs; use one of AnswerRelevancyMetric, BiasMetric, ContextualRelevancyMetric, FaithfulnessMetric, "
        "HallucinationMetric, PIILeakageMetric, ToxicityMetric"]


def test_an_embedded_tier_takes_a_trained_model_directory(tmp_path: Path) -> None:
    anchor = "    attributes: {prompt_version: app.prompt.sha}\n"
    text = VALID.replace(anchor, anchor + """  judge_queue:
    storage: file_storage
    judges:
      local: {judge: embedded, model: MODEL}
""").replace("  health_check:\n", "  health_check:\n  file_storage: {directory: /tmp/d}\n")
    text = text.replace("extensions: [health_check]", "extensions: [health_check, file_storage]")
    (tmp_path / "model.json").write_text("{}")
    assert parse_config(text.replace("MODEL", str(tmp_path)), {}).processors["judge_queue"].judges.local.model == (
        str(tmp_path))
    assert problems(text.replace("MODEL", str(tmp_path / "nowhere"))) == [
        f"processors.judge_queue.judges.local.model: '{tmp_path / 'nowhere'}' holds no model.json (a directory "
        "written by `make train-judge TRAIN_ARGS='--out DIR'`)"]


def test_env_expansion_with_default_and_typed_result() -> None:
    text = VALID.replace("      grpc:\n", "      grpc:\n        max_recv_msg_size_mib: ${env:MIB}\n")
    config = parse_config(text, {"JAEGER": "collector:4317", "MIB": "16"})
    assert config.exporters["otlp/jaeger"].endpoint == "collector:4317"
    assert config.receivers["otlp"].protocols.grpc.max_recv_msg_size_mib == 16


@pytest.mark.parametrize("secret", ["0123", "yes", "0x1F", "12:30", "null", "#hash", "1_000"])
def test_env_text_reaches_string_settings_verbatim(secret: str) -> None:
    text = VALID.replace("    headers: {x-team: llm}", "    headers:\n      x-team: ${env:SECRET}")
    config = parse_config(text, {"SECRET": secret})
    assert config.exporters["otlp/jaeger"].headers == {"x-team": secret}


def test_unset_env_without_default_names_the_path() -> None:
    text = VALID.replace("${env:JAEGER:-jaeger:4317}", "${env:JAEGER}")
    assert problems(text)[0] == ("exporters.otlp/jaeger.endpoint: environment variable JAEGER is not set "
                                 "(set it, or write ${env:JAEGER:-default})")


def test_dollar_dollar_is_a_literal_dollar() -> None:
    config = parse_config(VALID.replace("x-team: llm", "x-team: $$5"), {})
    assert config.exporters["otlp/jaeger"].headers == {"x-team": "$5"}


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    timeout: 2s", "    timeout: 2", "exporters.otlp/jaeger.timeout: expected a duration"),
    ("    timeout: 2s", "    timeout: soon", "exporters.otlp/jaeger.timeout: 'soon' is not a duration"),
    ("    timeout: 2s", "    timeout: 0s", "exporters.otlp/jaeger.timeout: must be positive"),
    ("    timeout: 2s", "    timeuot: 2s", "exporters.otlp/jaeger.timeuot: unknown key"),
    ("queue_size: 50", "queue_size: many", "exporters.otlp/jaeger.sending_queue.queue_size: expected an integer"),
    ("queue_size: 50", "queue_size: 0", "exporters.otlp/jaeger.sending_queue.queue_size: must be at least 1"),
    ("num_consumers: 2", "sizer: megabytes", "exporters.otlp/jaeger.sending_queue.sizer: must be one of requests"),
    ("num_consumers: 2", "enabled: false", "exporters.otlp/jaeger.sending_queue.enabled: the sending queue"),
    ("initial_interval: 250ms", "multiplier: 0.5", "exporters.otlp/jaeger.retry_on_failure.multiplier"),
    ("tls: {insecure: true}", "tls: {insecure: yes-please}", "exporters.otlp/jaeger.tls.insecure: expected true"),
    ("tls: {insecure: true}", "tls: {ca_file: /no/such.pem}", "exporters.otlp/jaeger.tls.ca_file: file"),
    ("x-team: llm", "X-Team: llm", "exporters.otlp/jaeger.headers.X-Team: gRPC metadata keys must be lowercase"),
    ("endpoint: ${env:JAEGER:-jaeger:4317}", "endpoint: jaeger", "exporters.otlp/jaeger.endpoint: 'jaeger' needs"),
    ("endpoint: http://phoenix:6006", "endpoint: phoenix:6006",
     "exporters.otlphttp/phoenix.endpoint: must start with http:// or https://"),
    ("  debug:\n", "  debug:\n    verbosity: loud\n", "exporters.debug.verbosity: must be one of basic, normal"),
    ("  otlphttp/phoenix:", "  zipkin:", "exporters.zipkin: unknown exporter type 'zipkin'"),
    ("      grpc:\n", "      grpc:\n        max_recv_msg_size_mib: 0\n",
     "receivers.otlp.protocols.grpc.max_recv_msg_size_mib: must be at least 1"),
    ("        endpoint: 127.0.0.1:4318", "        max_request_body_size: -1",
     "receivers.otlp.protocols.http.max_request_body_size: must be at least 1"),
    ("        endpoint: 127.0.0.1:4318", "        tls: {cert_file: /no/cert.pem}",
     "receivers.otlp.protocols.http.tls: cert_file and key_file are both required"),
    ("    protocols:\n      grpc:\n      http:\n        endpoint: 127.0.0.1:4318\n", "    protocols: {}\n",
     "receivers.otlp.protocols: enable grpc, http or both"),
    ("{prompt_version: app.prompt.sha}", "{prompt_verison: app.prompt.sha}",
     "processors.llm_extract.attributes.prompt_verison: unknown field"),
    ("      exporters: [otlp/jaeger, otlphttp/phoenix, debug]", "      exporters: [otlp/zipkin]",
     "service.pipelines.traces.exporters: 'otlp/zipkin' is not defined under exporters"),
    ("      exporters: [otlp/jaeger, otlphttp/phoenix, debug]", "      exporters: []",
     "service.pipelines.traces.exporters: list at least one"),
    ("    traces:", "    events:", "service.pipelines.events: a pipeline is of one signal"),
    ("    traces:", "    metrics:", "service.pipelines.metrics.processors: 'llm_extract' does not take metrics"),
    ("[otlp/jaeger, otlphttp/phoenix, debug]", "[otlp/jaeger, debug, otlp/jaeger]",
     "service.pipelines.traces.exporters: 'otlp/jaeger' is listed more than once"),
    ("        endpoint: 127.0.0.1:4318", "        endpoint: localhost",
     "receivers.otlp.protocols.http.endpoint: 'localhost' is not host:port"),
    ("  extensions: [health_check]", "  extensions: [health_check]\n  telemetry: {metrics: {address: nonsense}}",
     "service.telemetry.metrics.address: 'nonsense' is not host:port"),
    ("  extensions: [health_check]", "  extensions: [pprof]",
     "service.extensions: 'pprof' is not defined under extensions"),
    ("num_consumers: 2", "storage: nowhere", "exporters.otlp/jaeger.sending_queue.storage: 'nowhere' must be a "
     "file_storage extension"),
    ("  llm_extract:\n", "  judge_queue:\n    storage: health_check\n  llm_extract:\n",
     "processors.judge_queue.storage: 'health_check' must be a file_storage or postgresql extension"),
    ("  llm_extract:\n", "  judge_queue:\n    storage: s\n    judges: {heavy: {judge: openai}}\n  llm_extract:\n",
     "processors.judge_queue.judges.heavy.server: required with judge: openai"),
    ("  llm_extract:\n", "  judge_queue:\n    storage: s\n    metrics: [toxicity]\n  llm_extract:\n",
     "processors.judge_queue.metrics: no judge tier judges 'toxicity'"),
    ("  llm_extract:\n", "  judge_queue:\n    storage: s\n    judges: {cascade: {uncertainty_band: [0.8, 0.2]}}\n"
     "  llm_extract:\n", "processors.judge_queue.judges.cascade.uncertainty_band: give [low, high]"),
    ("  llm_extract:\n", "  judge_queue:\n    storage: s\n    judges: {heavy: {judge: openai, limits: "
     "{concurrency: 0}, server: {base_url: 'http://x', model: m}}}\n  llm_extract:\n",
     "processors.judge_queue.judges.heavy.limits.concurrency: must be at least 1"),
    ("      grpc:\n", "      grpc:\n        auth: {authenticator: bearertokenauth}\n",
     "receivers.otlp.protocols.grpc.auth.authenticator: 'bearertokenauth' must be a bearertokenauth extension"),
])
def test_each_rule_names_its_yaml_path(old: str, new: str, expected: str) -> None:
    assert old in VALID
    found = problems(VALID.replace(old, new))
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_are_reported_together() -> None:
    text = VALID.replace("    timeout: 2s", "    timeout: 2").replace("queue_size: 50", "queue_size: 0")
    found = problems(text.replace("      grpc:\n", "      grpc:\n        endpoint: [1]\n"))
    assert len(found) == 3, found


def test_missing_required_key_and_service() -> None:
    assert "exporters.otlp.endpoint: required" in problems(VALID.replace("  otlp/jaeger:", "  otlp:").replace(
        "    endpoint: ${env:JAEGER:-jaeger:4317}\n", "").replace("[otlp/jaeger,", "[otlp,"))
    assert "service: required (it lists the pipelines to run)" in problems(VALID[:VALID.index("service:")])


def test_a_receiver_feeds_one_pipeline() -> None:
    text = VALID + "    traces/second:\n      receivers: [otlp]\n      exporters: [debug]\n"
    assert any("'otlp' already feeds pipeline traces" in p for p in problems(text))


PIPELINE_ORDER = """
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}
processors:
  llm_extract:
  llm_checks:
  sampler:
  judge_queue: {{storage: file_storage}}
exporters:
  debug:
extensions:
  file_storage: {{directory: /tmp/unused}}
service:
  extensions: [file_storage]
  pipelines:
    traces: {{receivers: [otlp], processors: [{processors}], exporters: [debug]}}
"""


@pytest.mark.parametrize(("processors", "expected"), [
    ("judge_queue, sampler, llm_extract", "service.pipelines.traces.processors: judge_queue needs llm_spans, which "
     "llm_extract adds: list llm_extract before judge_queue"),
    ("llm_extract, judge_queue, sampler", "service.pipelines.traces.processors: judge_queue uses samples, which "
     "sampler adds after it: list sampler before judge_queue"),
    ("llm_extract, sampler, llm_checks, judge_queue", "service.pipelines.traces.processors: sampler uses evaluations, "
     "which llm_checks adds after it: list llm_checks before sampler"),
    ("sampler", "service.pipelines.traces.processors: sampler needs llm_spans, which llm_extract adds: list "
     "llm_extract before sampler"),
])
def test_a_pipeline_in_an_order_that_cannot_work_is_refused(processors: str, expected: str) -> None:
    assert expected in problems(PIPELINE_ORDER.format(processors=processors))


@pytest.mark.parametrize("processors", ["llm_extract", "llm_extract, judge_queue", "llm_extract, sampler, judge_queue",
                                        "llm_extract, llm_checks, sampler, judge_queue"])
def test_pipelines_in_a_working_order_are_accepted(processors: str) -> None:
    parse_config(PIPELINE_ORDER.format(processors=processors), {})


def test_validate_refuses_an_impossible_order_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PIPELINE_ORDER.format(processors="judge_queue, sampler, llm_extract"))
    result = subprocess.run([*TRACEJUDGE, "validate", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "service.pipelines.traces.processors: judge_queue needs llm_spans" in result.stderr


def test_a_defined_extension_that_is_not_listed_is_not_checked_or_started() -> None:
    text = PIPELINE_ORDER.format(processors="llm_extract").replace(
        "extensions:\n", "extensions:\n  eval_service: {grpc: {endpoint: 127.0.0.1:0}, judge_queue: nowhere}\n", 1)
    assert "eval_service" in parse_config(text, {}).extensions


def test_every_factory_in_the_map_is_the_type_and_kind_it_is_listed_as() -> None:
    for kind in KINDS:
        for type_ in factories.known(kind):
            factory = factories.factory(kind, type_)
            assert (factory.kind, factory.type) == (kind, type_)


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("250ms", 0.25), ("1m30s", 90.0), ("1h", 3600.0),
                                               ("0", 0.0)])
def test_durations_are_go_style(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_shipped_config_is_valid() -> None:
    with open("otel-config.yaml", encoding="utf-8") as f:
        config = parse_config(f.read(), {})
    assert config.service.pipelines["traces"].exporters == ("debug",)
