"""The sampler: seeded and trace-consistent, rates that nest, inclusion probabilities that make estimates unbiased."""

from __future__ import annotations

import random
from types import MappingProxyType

import grpc
import pytest

from tests.support.metrics import metric
from tests.support.otlp_capture import CaptureServer
from tests.support.pipeline import forwarding_config, grpc_target, running
from tests.support.requests import export_request
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.llm_span import LlmSpan, Message
from tracejudge.processor.processors.sampler.sampling import (
    RateScale,
    Sampler,
    SamplerConfig,
    SamplingRule,
    StrataConfig,
)
from tracejudge.processor.service.config import parse_config


def llm_span(trace_id: str, span_id: str = "01" * 8, status: str = "unset", prompt_version: str = "v1",
             attributes: dict[str, object] | None = None, latency_s: float = 1.0) -> LlmSpan:
    return LlmSpan(trace_id=trace_id, span_id=span_id, parent_span_id="", service="shop", convention="gen_ai",
                   prompt_version=prompt_version, output_messages=(Message("assistant", "ok"),), status=status,
                   start_unix_nano=0, end_unix_nano=int(latency_s * 1e9),
                   attributes=MappingProxyType(attributes or {}))


def trace_ids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [rng.getrandbits(128).to_bytes(16, "big").hex() for _ in range(n)]


def test_every_span_of_a_trace_gets_the_same_decision_and_the_seed_replays_it() -> None:
    ids = trace_ids(200)
    first = Sampler(SamplerConfig(seed=3, rate=0.3))
    again = Sampler(SamplerConfig(seed=3, rate=0.3))
    for trace_id in ids:
        a = first.decide(llm_span(trace_id, "01" * 8)).sampled
        assert first.decide(llm_span(trace_id, "02" * 8)).sampled == a
        assert again.decide(llm_span(trace_id)).sampled == a


def test_rates_nest_and_the_uniform_rate_is_hit() -> None:
    ids = trace_ids(20_000)
    low = {t for t in ids if Sampler(SamplerConfig(rate=0.05)).decide(llm_span(t)).sampled}
    high = {t for t in ids if Sampler(SamplerConfig(rate=0.20)).decide(llm_span(t)).sampled}
    assert low <= high
    # Binomial(20000, p): 4 standard errors either side.
    assert abs(len(low) / 20_000 - 0.05) < 4 * (0.05 * 0.95 / 20_000) ** 0.5
    assert abs(len(high) / 20_000 - 0.20) < 4 * (0.20 * 0.80 / 20_000) ** 0.5


def test_rules_and_strata_raise_the_probability_and_say_why() -> None:
    config = SamplerConfig(rate=0.01, strata=StrataConfig("customer.tier", {"enterprise": 0.5}), rules=(
        SamplingRule("errors", rate=1.0, status="error"),
        SamplingRule("failed_checks", rate=0.8, failed_check=True),
        SamplingRule("slow", rate=0.3, latency_above=10.0),
        SamplingRule("thumbs_down", rate=1.0, attribute="feedback.score", equals="-1"),
    ))
    sampler = Sampler(config)
    trace = trace_ids(1)[0]
    failed = (EvaluationResult("tracejudge.check.pii", 0.0, "fail"),)
    cases = [
        (llm_span(trace), (), 0.01, "uniform"),
        (llm_span(trace, attributes={"customer.tier": "enterprise"}), (), 0.5, "customer.tier=enterprise"),
        (llm_span(trace, status="error"), (), 1.0, "rule:errors"),
        (llm_span(trace), failed, 0.8, "rule:failed_checks"),
        (llm_span(trace, latency_s=12.0), (), 0.3, "rule:slow"),
        (llm_span(trace, attributes={"feedback.score": -1}), (), 1.0, "rule:thumbs_down"),
        (llm_span(trace, attributes={"feedback.score": 1}), (), 0.01, "uniform"),
    ]
    for span, checks, probability, stratum in cases:
        decision = sampler.decide(span, checks)
        assert (decision.probability, decision.stratum) == (probability, stratum)


def test_a_lowered_rate_scale_samples_a_nested_subset_and_records_the_true_probability() -> None:
    ids = trace_ids(4000)
    scale = RateScale()
    config = SamplerConfig(rate=0.4, rules=(SamplingRule(name="errors", status="error", rate=1.0),))
    full = {t for t in ids if Sampler(config).decide(llm_span(t)).sampled}
    scale.set(0.25, "judge tier heavy has 5% of its daily budget left")
    scaled = Sampler(config, scale=scale)
    decisions = {t: scaled.decide(llm_span(t)) for t in ids}
    chosen = {t for t, d in decisions.items() if d.sampled}
    assert chosen < full  # nested: nothing new is picked because the budget ran low
    assert {(d.probability, d.scale) for d in decisions.values()} == {(0.1, 0.25)}
    assert abs(len(chosen) / len(ids) - 0.1) < 4 * (0.1 * 0.9 / len(ids)) ** 0.5
    assert scaled.decide(llm_span(ids[0], status="error")).probability == 0.25  # rules scale too


def test_a_new_prompt_version_is_sampled_until_it_is_old_enough() -> None:
    now = [1_000_000.0]
    rule = SamplingRule("new_prompt", rate=1.0, new_prompt_version_hours=1.0, new_prompt_version_spans=3)
    sampler = Sampler(SamplerConfig(rate=0.0, rules=(rule,)), clock=lambda: now[0])
    trace = trace_ids(1)[0]
    stratum = [sampler.decide(llm_span(trace, prompt_version="v2")).stratum for _ in range(5)]
    assert stratum == ["rule:new_prompt"] * 5  # still under an hour old
    now[0] += 2 * 3600
    assert sampler.decide(llm_span(trace, prompt_version="v2")).stratum == "uniform"
    assert sampler.decide(llm_span(trace, prompt_version="v3")).stratum == "rule:new_prompt"


def test_horvitz_thompson_weights_give_an_unbiased_mean_under_targeted_sampling() -> None:
    """Bad answers (score 0) are over-sampled by a rule; weighting by 1/p recovers the population mean."""
    rng = random.Random(11)
    config = SamplerConfig(seed=5, rate=0.05, rules=(SamplingRule("flagged", rate=0.6, attribute="flagged"),))
    sampler = Sampler(config)
    population, weighted, weights, naive = [], 0.0, 0.0, []
    for trace_id in trace_ids(40_000, seed=2):
        bad = rng.random() < 0.2
        score = 0.0 if bad else 1.0
        population.append(score)
        decision = sampler.decide(llm_span(trace_id, attributes={"flagged": True} if bad else {}))
        if decision.sampled:
            weighted += score / decision.probability
            weights += 1 / decision.probability
            naive.append(score)
    true_mean = sum(population) / len(population)
    assert abs(weighted / weights - true_mean) < 0.02
    assert sum(naive) / len(naive) < true_mean - 0.2  # the unweighted sample is badly biased


@pytest.mark.parametrize(("rule", "message"), [
    (SamplingRule("x", rate=1.5, status="error"), "rate: must be in [0, 1]"),
    (SamplingRule("x"), "give at least one condition"),
    (SamplingRule("x", equals="1"), "equals: needs `attribute`"),
])
def test_rule_config_errors(rule: SamplingRule, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        rule.validate("processors.sampler.rules[0]")
    assert any(message in p for p in error.value.problems)


def test_sampler_config_from_yaml() -> None:
    config = parse_config("""
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}}
processors:
  llm_extract:
  sampler:
    seed: 9
    rate: 0.1
    strata: {attribute: customer.tier, rates: {enterprise: 0.5}}
    rules:
      - {name: errors, status: error}
      - {name: slow, rate: 0.5, latency_above: 10s}
exporters: {debug:}
service: {pipelines: {traces: {receivers: [otlp], processors: [llm_extract, sampler], exporters: [debug]}}}
""", {})
    sampler = config.processors["sampler"]
    assert sampler == SamplerConfig(seed=9, rate=0.1, strata=StrataConfig("customer.tier", {"enterprise": 0.5}),
                                    rules=(SamplingRule("errors", status="error"),
                                           SamplingRule("slow", rate=0.5, latency_above=10.0)))


async def test_the_sampler_stage_decides_for_judgeable_llm_spans_only() -> None:
    request = export_request(spans=6, llm_every=2)  # LLM spans 0, 2, 4
    silent = request.resource_spans[0].scope_spans[0].spans[4]
    kept = [kv for kv in silent.attributes if kv.key != "gen_ai.output.messages"]
    del silent.attributes[:]
    silent.attributes.extend(kept)  # content capture off for this one: not judgeable
    async with CaptureServer() as downstream:
        config = forwarding_config(downstream.endpoint).replace(
            "      processors: [llm_extract]", "      processors: [llm_extract, sampler]").replace(
            "  llm_extract:\n", "  llm_extract:\n  sampler: {rate: 1.0}\n")
        async with running(config) as service, grpc.aio.insecure_channel(grpc_target(service)) as channel:
            await channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
                request.SerializeToString(), timeout=10)
            await downstream.wait_for_requests(1)
            assert downstream.requests == [request.SerializeToString()]  # forwarding is untouched
            assert metric(service, "tracejudge_sampling_decisions_total", stratum="uniform", outcome="sampled") == 2
