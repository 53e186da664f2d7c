"""The local tier against a real llama.cpp server (opt-in: `make test-llama`): the wiring, not the judgement.

Gemma 3 270M is a weak judge, so each verdict may be a score or, honestly, unjudged (`parse_error`); either way it
must agree with what the server answered, which a recording proxy between the judge and the server shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.llamacpp import Exchange, LlamaCppServer, RecordingProxy, llamacpp_python
from tracejudge.judge.openai_judge import OpenAiJudge
from tracejudge.judge.server_config import OpenAiJudgeConfig
from tracejudge.judge.verdict import JudgeInput, Verdict

CONTEXT = "Paris is the capital and largest city of France."
ITEMS = [
    JudgeInput("faithfulness", "What is the capital of France?", "Paris is the capital of France.", CONTEXT),
    JudgeInput("faithfulness", "What is the capital of France?", "The capital of France is Lyon.", CONTEXT),
    JudgeInput("relevancy", "How long should I boil an egg?", "Boil the egg for about eight minutes."),
]
# A verdict with a one-sentence explanation takes about 40 tokens; a rambling one is cut off (~3 s at 25 tokens/s).
MAX_OUTPUT_TOKENS = 64


@pytest.fixture(scope="module", name="llamacpp")
def llamacpp_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppServer]:
    with LlamaCppServer(llamacpp_python(), tmp_path_factory.mktemp("llamacpp")) as server:
        yield server


async def test_local_tier_judges_through_a_real_llama_cpp_server_with_json_schema(llamacpp: LlamaCppServer) -> None:
    async with RecordingProxy(llamacpp.base_url) as proxy:
        config = OpenAiJudgeConfig(
            base_url=proxy.base_url,
            model="gemma-3-270m",
            timeout=120.0,
            max_retries=0,
            max_output_tokens=MAX_OUTPUT_TOKENS,
        )
        config.validate("judges.local")
        judge = OpenAiJudge(config, tier="local")
        try:
            verdicts = [(await judge.judge([item]))[0] for item in ITEMS]  # one at a time: one exchange each
        finally:
            await judge.close()
    # Exactly one request per item, each answered 200 to json_schema: the judge never had to fall back.
    assert [(e.request["response_format"]["type"], e.status) for e in proxy.exchanges] == [("json_schema", 200)] * 3
    for verdict, exchange in zip(verdicts, proxy.exchanges, strict=True):
        check_verdict_matches_answer(verdict, exchange)


def check_verdict_matches_answer(verdict: Verdict, exchange: Exchange) -> None:
    choice = exchange.response["choices"][0]
    content, usage = choice["message"]["content"], exchange.response["usage"]
    assert (verdict.tier, verdict.judge_model) == ("local", "gemma-3-270m")
    assert verdict.input_tokens == usage["prompt_tokens"] > 0
    assert 0 < verdict.output_tokens == usage["completion_tokens"] <= MAX_OUTPUT_TOKENS
    assert verdict.latency_s > 0
    assert content.lstrip().startswith("{"), f"not constrained to the verdict schema: {content!r}"
    answer = json.loads(content) if choice["finish_reason"] == "stop" else None  # "length": cut at max_tokens
    if answer is not None:  # the schema held: exactly its keys, and a label from its enum
        assert set(answer) == {"score", "label", "explanation"} and answer["label"] in ("pass", "fail"), answer
    if answer is not None and 0 <= answer["score"] <= 1:
        assert (verdict.score, verdict.label, verdict.error_type) == (answer["score"], answer["label"], "")
    else:
        # A cut-off answer, or a score outside [0, 1] (the server enforces the schema's shape, not its number
        # bounds, and this model likes 0-100): unjudged, never a made-up score.
        assert (verdict.score, verdict.label, verdict.error_type) == (None, "", "parse_error"), verdict
