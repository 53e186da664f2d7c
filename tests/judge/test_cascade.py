"""The cascade and its tiers' limits against a real loopback OpenAI-compatible server: who decides, when the heavy
tier is asked, budgets that hold, pauses that stop calls until resumed, the verdict cache. Never a made-up score."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import Completion, OpenAiServer
from tracejudge.judge.cascade import CascadeConfig, CascadeItem
from tracejudge.judge.embedded import EmbeddedJudge
from tracejudge.judge.limits import GatedJudge, TierGate, TierLimits, utc_day
from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig
from tracejudge.judge.server_config import OpenAiJudgeConfig
from tracejudge.judge.tiers import Judges, JudgesConfig, TierConfig, build_judges
from tracejudge.judge.verdict import JudgeInput, Verdict

CONTEXT = "Paris is the capital of France. It has 2.1 million inhabitants."
SURE = JudgeInput("faithfulness", "Capital of France?", "Paris is the capital of France.", CONTEXT)
UNSURE = JudgeInput("faithfulness", "Population of Paris?", "Paris has 3 million tourists.", CONTEXT)
NO_CONTEXT = JudgeInput("faithfulness", "Capital of France?", "Paris.", "")


def verdict(score: float) -> Completion:
    label = "pass" if score >= 0.5 else "fail"
    return Completion(content=f'{{"score": {score}, "label": "{label}", "explanation": "scripted"}}',
                      prompt_tokens=1000, completion_tokens=100)


def judges(server: OpenAiServer, store: JudgeQueue | None = None, band: tuple[float, float] = (0.3, 0.7),
           disagreement: float = 0.0, cache_ttl: float = 0.0, local: str = "embedded", **limits: Any) -> Judges:
    heavy = TierConfig(judge="openai", server=OpenAiJudgeConfig(
        base_url=server.base_url, model="judge-model", max_retries=0, timeout=5.0, max_output_tokens=100,
        usd_per_million_input_tokens=1.0, usd_per_million_output_tokens=10.0), limits=TierLimits(**limits))
    return build_judges(JudgesConfig(local=TierConfig(judge=local), heavy=heavy,  # type: ignore[arg-type]
                                     cascade=CascadeConfig(band, disagreement), cache_ttl=cache_ttl), store)


def store(tmp_path: Path, clock: Callable[[], float] | None = None) -> JudgeQueue:
    return JudgeQueue(str(tmp_path / "judge.db"), JudgeQueueConfig(), "1", **({"clock": clock} if clock else {}))


async def local_scores(*items: JudgeInput) -> list[float]:
    """What the embedded judge scores `items`, to set a band around."""
    judge = EmbeddedJudge()
    scores = [v.score for v in await judge.judge(items)]
    await judge.close()
    assert all(score is not None for score in scores)
    return [score for score in scores if score is not None]


async def test_the_local_tier_decides_what_it_is_sure_of_and_escalates_the_rest() -> None:
    sure_score, unsure_score = await local_scores(SURE, UNSURE)
    middle = (sure_score + unsure_score) / 2  # a band holding UNSURE's score and not SURE's
    band = (unsure_score - 0.01, middle) if unsure_score < sure_score else (middle, unsure_score + 0.01)
    async with OpenAiServer(verdict(0.1)) as server:
        built = judges(server, band=band)
        sure, unsure, no_context = await built.cascade.judge([CascadeItem(SURE), CascadeItem(UNSURE),
                                                              CascadeItem(NO_CONTEXT)])
        await built.close()
    assert (sure.verdict.tier, sure.escalation) == ("local", "")
    assert sure.verdict.score == pytest.approx(sure_score)
    assert (unsure.verdict.tier, unsure.verdict.score, unsure.escalation) == ("heavy", 0.1, "uncertain")
    assert unsure.local is not None and unsure.local.score == pytest.approx(unsure_score)
    # No context: no tier could do better, so nobody is asked and nothing is guessed.
    assert (no_context.verdict.score, no_context.verdict.error_type) == (None, "no_context")
    assert len(server.requests) == 1


async def test_a_routing_rule_sends_an_item_to_the_heavy_tier_whatever_the_local_verdict() -> None:
    async with OpenAiServer(verdict(0.8)) as server:
        built = judges(server)
        (result,) = await built.cascade.judge([CascadeItem(SURE, route="enterprise")])
        await built.close()
    assert (result.verdict.tier, result.verdict.score, result.escalation) == ("heavy", 0.8, "rule:enterprise")


async def test_when_the_heavy_tier_fails_the_local_verdict_stands_and_says_it_was_degraded() -> None:
    (local_score,) = await local_scores(UNSURE)
    async with OpenAiServer(verdict(0.1)) as server:
        server.fail_next(500, times=10)
        built = judges(server, band=(0.0, 1.0))
        (result,) = await built.cascade.judge([CascadeItem(UNSURE)])
        await built.close()
    assert result.verdict.tier == "local" and result.verdict.score == pytest.approx(local_score)
    assert (result.escalation, result.degraded) == ("uncertain", "http_500")


async def test_with_no_local_tier_a_failed_heavy_call_is_unjudged_not_scored() -> None:
    async with OpenAiServer(verdict(0.1)) as server:
        server.fail_next(503, times=10)
        built = judges(server, local="none")
        (result,) = await built.cascade.judge([CascadeItem(SURE)])
        await built.close()
    assert (result.verdict.score, result.verdict.error_type, result.verdict.tier) == (None, "http_503", "heavy")


async def test_self_consistency_asks_again_on_a_large_disagreement_and_averages() -> None:
    (local_score,) = await local_scores(UNSURE)
    first = 0.95 if local_score < 0.6 else 0.05  # at least 0.35 from the local score: ask again
    answers = iter([first, 0.7])
    async with OpenAiServer(lambda body: verdict(next(answers))) as server:
        built = judges(server, band=(0.0, 1.0), disagreement=0.3)
        (result,) = await built.cascade.judge([CascadeItem(UNSURE)])
        await built.close()
    assert len(server.requests) == 2
    assert result.verdict.score is not None and abs(result.verdict.score - (first + 0.7) / 2) < 1e-9
    assert result.heavy_calls == 2 and "mean of two heavy verdicts" in result.verdict.explanation


async def test_the_daily_budget_is_never_exceeded_and_the_cascade_degrades_to_local(tmp_path: Path) -> None:
    # Each call is estimated at most ~0.0011 USD (input at 1 USD/M, 100 output tokens at 10 USD/M) and costs
    # 0.002 (1000 input + 100 output tokens): a 0.005 budget allows two calls, not three.
    items = [CascadeItem(JudgeInput("faithfulness", f"q{i}", f"Paris has {i} million people.", CONTEXT))
             for i in range(6)]
    async with OpenAiServer(verdict(0.2)) as server:
        queue = store(tmp_path)
        built = judges(server, queue, band=(0.0, 1.0), daily_budget_usd=0.005, concurrency=1)
        results = await built.cascade.judge(items)
        await built.close()
        assert len(server.requests) == 2
        gate_spent = queue.spent_usd("heavy", utc_day(time.time()))
        assert built.gates["heavy"].budget_left_fraction <= 0.2  # the sampler's cue to scale down (the ledger's)
        queue.close()
    assert abs(gate_spent - 0.004) < 1e-12
    assert sum(r.verdict.tier == "heavy" for r in results) == 2
    degraded = [r for r in results if r.verdict.tier == "local"]
    assert len(degraded) == 4 and {r.degraded for r in degraded} == {"budget_exhausted"}


async def test_spend_survives_a_restart_so_the_budget_is_per_day_not_per_process(tmp_path: Path) -> None:
    async with OpenAiServer(verdict(0.2)) as server:
        for _ in range(2):
            queue = store(tmp_path)
            built = judges(server, queue, band=(0.0, 1.0), daily_budget_usd=0.005)
            await built.cascade.judge([CascadeItem(UNSURE)] * 2)  # identical items: no cache, two calls if allowed
            await built.close()
            queue.close()
    assert len(server.requests) == 2  # the second process found the budget spent


async def test_an_auth_error_pauses_the_tier_until_it_is_resumed() -> None:
    async with OpenAiServer(verdict(0.2)) as server:
        server.fail_next(401, message="invalid api key")
        built = judges(server, band=(0.0, 1.0), pause=0.0)
        (first,) = await built.cascade.judge([CascadeItem(UNSURE)])
        (second,) = await built.cascade.judge([CascadeItem(UNSURE)])
        assert len(server.requests) == 1  # paused: the second item never reached the server
        assert (first.degraded, second.degraded) == ("auth_error", "tier_paused")
        assert built.gates["heavy"].paused and "invalid api key" in built.gates["heavy"].paused_reason
        built.gates["heavy"].resume()
        (third,) = await built.cascade.judge([CascadeItem(UNSURE)])
        await built.close()
    assert (third.verdict.tier, third.verdict.score, len(server.requests)) == ("heavy", 0.2, 2)


async def test_cached_verdicts_are_not_paid_for_twice(tmp_path: Path) -> None:
    async with OpenAiServer(verdict(0.2)) as server:
        queue = store(tmp_path)
        built = judges(server, queue, band=(0.0, 1.0), cache_ttl=3600.0)
        (first,) = await built.cascade.judge([CascadeItem(UNSURE)])
        (again,) = await built.cascade.judge([CascadeItem(UNSURE)])
        await built.close()
        queue.close()
    assert len(server.requests) == 1
    assert (again.verdict.score, again.verdict.cached, again.verdict.cost_usd) == (0.2, True, 0.0)
    assert first.verdict.cost_usd > 0 and not first.verdict.cached


async def test_the_rate_limit_spaces_calls_out() -> None:
    async with OpenAiServer(verdict(0.2)) as server:
        built = judges(server, local="none", rate_per_s=5.0, burst=1)  # no local tier: the calls start at once
        started = time.monotonic()
        results = await built.cascade.judge([CascadeItem(UNSURE)] * 3)
        await built.close()
    assert [r.verdict.score for r in results] == [0.2, 0.2, 0.2]
    # A token every 200 ms and one in the bucket: the third call leaves 400 ms after the first, which left after
    # `started`. Measured from our side: the gaps between arrivals also hold the network's jitter (a delayed first
    # request shortens the next gap), so they bound nothing on a loaded machine.
    assert len(server.received_at) == 3 and server.received_at[2] - started >= 0.4 - 1e-3


class RecordingLocalJudge:
    """An in-process judge that records the batches it is given."""

    tier, model, prompt_version = "local", "recording", "recording-1"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        return 0.0

    async def close(self) -> None:
        return None

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        self.batches.append(len(inputs))
        return [Verdict(item.metric, 1.0, "pass", tier="local") for item in inputs]


async def test_an_in_process_judge_gets_whole_batches_and_a_server_judge_one_item_per_call() -> None:
    local = RecordingLocalJudge()
    batched = GatedJudge(local, TierGate("local", TierLimits(concurrency=1)), batched=True)
    assert len(await batched.judge([SURE] * 32)) == 32 and local.batches == [32]
    per_call = GatedJudge(local, TierGate("local", TierLimits(concurrency=1)))
    assert len(await per_call.judge([SURE] * 3)) == 3 and local.batches == [32, 1, 1, 1]
