"""Redaction: a judge server is sent text with personal data replaced, the heavy tier by default; the verdict says
what was replaced."""

from __future__ import annotations

import json

import pytest

from tests.support.openai_server import Completion, OpenAiServer
from tracejudge.judge.cascade import CascadeItem
from tracejudge.judge.redaction import RedactionConfig, RedactionPattern, Redactor
from tracejudge.judge.server_config import OpenAiJudgeConfig
from tracejudge.judge.tiers import JudgesConfig, TierConfig, build_judges
from tracejudge.judge.verdict import JudgeInput
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.service.config import parse_config

VERDICT = Completion(content='{"score": 0.9, "label": "pass", "explanation": "supported"}')


def test_every_find_becomes_its_placeholder_and_is_counted() -> None:
    redactor = Redactor(RedactionConfig(patterns=(RedactionPattern("account", r"ACC-\d{6}"),)))
    text, counts = redactor.redact("Jane (jane@example.com, +44 20 7946 0958) paid with 4111-1111-1111-1111 "
                                   "from ACC-123456; write to jane@example.com.")
    assert text == ("Jane ([EMAIL], [PHONE]) paid with [CARD] from [ACCOUNT]; write to [EMAIL].")
    assert counts == {"email": 2, "phone": 1, "card": 1, "account": 1}
    assert Redactor(RedactionConfig()).redact("nothing personal") == ("nothing personal", {})


async def test_the_heavy_tier_is_sent_redacted_text_and_the_verdict_says_what_was_replaced() -> None:
    async with OpenAiServer(VERDICT) as server:
        heavy = TierConfig(judge="openai", server=OpenAiJudgeConfig(base_url=server.base_url, model="judge"))
        judges = build_judges(JudgesConfig(local=TierConfig(judge="none"), heavy=heavy), None)
        item = JudgeInput("relevancy", "My card is 4111 1111 1111 1111, mail me at a@b.co", "Done, a@b.co.",
                          "Customer a@b.co")
        try:
            (result,) = await judges.cascade.judge([CascadeItem(item)])
        finally:
            await judges.close()
        sent = json.dumps(server.requests[0]["messages"])
        assert "a@b.co" not in sent and "4111" not in sent and "[EMAIL]" in sent and "[CARD]" in sent
        assert result.verdict.score == 0.9 and dict(result.verdict.redacted) == {"email": 3, "card": 1}


async def test_a_local_server_tier_is_sent_text_as_is_unless_configured() -> None:
    async with OpenAiServer(VERDICT) as server:
        for redaction, expected in ((None, "a@b.co"), (RedactionConfig(), "[EMAIL]")):
            local = TierConfig(judge="openai", server=OpenAiJudgeConfig(base_url=server.base_url, model="judge"),
                               redaction=redaction)
            judges = build_judges(JudgesConfig(local=local, heavy=TierConfig(judge="none")), None)
            try:
                await judges.cascade.judge([CascadeItem(JudgeInput("relevancy", "mail a@b.co", "ok"))])
            finally:
                await judges.close()
            assert expected in json.dumps(server.requests[-1]["messages"])


@pytest.mark.parametrize(("redaction", "problem"), [
    ("{detectors: [email, ssn]}", "judges.heavy.redaction.detectors: unknown detector 'ssn'"),
    ("{patterns: [{name: acc, regex: '('}]}", "judges.heavy.redaction.patterns[0].regex: not a valid regular"),
    ("{patterns: [{name: acc, regex: 'x*'}]}", "judges.heavy.redaction.patterns[0].regex: matches the empty string"),
    ("{patterns: [{name: 'a b', regex: x}]}", "judges.heavy.redaction.patterns[0].name: letters, digits and _"),
])
def test_bad_redaction_settings_name_their_key(redaction: str, problem: str) -> None:
    text = f"""
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}}}}}}}
processors:
  llm_extract:
  sampler: {{rate: 1.0}}
  judge_queue:
    storage: file_storage
    judges:
      heavy:
        judge: openai
        server: {{base_url: "http://127.0.0.1:1/v1", model: m}}
        redaction: {redaction}
exporters: {{debug: {{}}}}
extensions: {{file_storage: {{directory: /tmp/x}}}}
service:
  extensions: [file_storage]
  pipelines: {{traces: {{receivers: [otlp], processors: [llm_extract, sampler, judge_queue], exporters: [debug]}}}}
"""
    with pytest.raises(ConfigError) as error:
        parse_config(text, {})
    assert any(problem in p for p in error.value.problems), error.value.problems


def test_redaction_on_a_tier_that_sends_nothing_is_refused() -> None:
    with pytest.raises(ConfigError, match="redaction: only for a tier that sends text to a server"):
        TierConfig(judge="embedded", redaction=RedactionConfig()).validate("judges.local")
