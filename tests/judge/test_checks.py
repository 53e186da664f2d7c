"""Deterministic checks: each one passes, fails with a reason, or stays silent when it does not apply."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import MappingProxyType

import pytest

from tests.support.growth import growth
from tracejudge.judge.checks import MAX_CHECKED_CHARS, Checks, ChecksConfig
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.llm_span import LlmSpan, Message


def span(answer: str | None, finish: tuple[str, ...] = ("stop",), documents: tuple[str, ...] = (),
         attributes: dict[str, object] | None = None) -> LlmSpan:
    output = () if answer is None else (Message("assistant", answer),)
    return LlmSpan(trace_id="ab" * 16, span_id="cd" * 8, parent_span_id="", service="shop", convention="gen_ai",
                   output_messages=output, finish_reasons=finish, documents=documents,
                   attributes=MappingProxyType(attributes or {}))


def verdicts(results: tuple[EvaluationResult, ...]) -> dict[str, str]:
    return {r.name.removeprefix("tracejudge.check."): r.label for r in results}


def test_a_good_answer_passes_every_applicable_check() -> None:
    assert verdicts(Checks(ChecksConfig()).run(span("Paris is the capital of France."))) == {
        "truncated": "pass", "answer_length": "pass", "refusal": "pass", "pii": "pass"}


def test_without_content_only_metadata_checks_run() -> None:
    results = Checks(ChecksConfig()).run(span(None, finish=("length",)))
    assert verdicts(results) == {"truncated": "fail"}
    assert results[0].score == 0.0 and "token limit" in results[0].explanation


@pytest.mark.parametrize(("answer", "check"), [
    ("", "answer_length"),
    ("I'm sorry, but I can't help with that.", "refusal"),
    ("I\u2019m sorry, I can\u2019t help with that.", "refusal"),
    ("Write to jane.doe@example.com for details.", "pii"),
    ("Call me on +44 20 7946 0958 tomorrow.", "pii"),
    ("Card: 4111 1111 1111 1111, exp 12/30.", "pii"),
])
def test_each_check_fails_on_its_case(answer: str, check: str) -> None:
    result = next(r for r in Checks(ChecksConfig()).run(span(answer)) if r.name.endswith(check))
    assert (result.label, result.score) == ("fail", 0.0) and result.explanation


def test_card_numbers_need_a_valid_luhn_checksum() -> None:
    assert verdicts(Checks(ChecksConfig()).run(span("Order 4111 1111 1111 1112 shipped.")))["pii"] == "pass"


def test_length_limits() -> None:
    checks = Checks(ChecksConfig(min_answer_chars=5, max_answer_chars=10))
    assert verdicts(checks.run(span("Yes")))["answer_length"] == "fail"
    assert verdicts(checks.run(span("A" * 11)))["answer_length"] == "fail"
    assert verdicts(checks.run(span("Fine here")))["answer_length"] == "pass"


SCHEMA = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}


@pytest.mark.parametrize(("answer", "label"), [
    ('{"city": "Paris"}', "pass"),
    ('```json\n{"city": "Paris"}\n```', "pass"),
    ('{"town": "Paris"}', "fail"),
    ("Paris", "fail"),
])
def test_json_is_checked_only_when_requested_and_against_the_schema(answer: str, label: str) -> None:
    checks = Checks(ChecksConfig(json_schema=SCHEMA))
    requested = {"gen_ai.output.type": "json"}
    assert verdicts(checks.run(span(answer, attributes=requested)))["json"] == label
    openinference = {"llm.invocation_parameters": json.dumps({"response_format": {"type": "json_object"}})}
    assert verdicts(checks.run(span(answer, attributes=openinference)))["json"] == label
    assert "json" not in verdicts(checks.run(span(answer)))


def test_citations_are_required_only_above_the_context_size() -> None:
    checks = Checks(ChecksConfig(citations_required_above_chars=100))
    long_context = ("x" * 150,)
    assert verdicts(checks.run(span("Paris [1].", documents=long_context)))["citations"] == "pass"
    assert verdicts(checks.run(span("Paris.", documents=long_context)))["citations"] == "fail"
    assert "citations" not in verdicts(checks.run(span("Paris.", documents=("short",))))


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"processors\.llm_checks\.json_schema: not a valid JSON Schema"):
        ChecksConfig(json_schema={"type": 5}).validate("processors.llm_checks")
    with pytest.raises(ConfigError, match="citation_pattern: not a valid regular expression"):
        ChecksConfig(citation_pattern="[").validate("processors.llm_checks")


HOSTILE = {  # answers that made the checks' regular expressions quadratic or cubic, by size
    "e-mail check: a long local part with no domain": lambda n: "a" * n + "@",
    "e-mail check: many @ with long domains": lambda n: ("x@" + "b" * 50) * (n // 52),
    "JSON fence with no closing fence": lambda n: "```" + " " * n + "x",
    "JSON nested deeper than the parser's stack": lambda n: "[" * n,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_answers_are_checked_in_linear_time(case: str) -> None:
    checks = Checks(ChecksConfig())

    def run_at(n: int) -> Callable[[], object]:
        hostile = span(HOSTILE[case](n), attributes={"gen_ai.output.type": "json"})
        return lambda: checks.run(hostile)

    results = verdicts(checks.run(span(HOSTILE[case](20_000), attributes={"gen_ai.output.type": "json"})))
    assert results["json"] == "fail" and results["pii"] == "pass"
    # 8 times the input: ~8 times the work when linear (the old patterns: ~64 and ~512 times)
    assert growth(run_at, 20_000) < 24


def test_only_the_beginning_of_a_huge_answer_is_scanned_and_the_verdict_says_so() -> None:
    answer = "fine " * (MAX_CHECKED_CHARS // 5) + "call me at a@b.co"
    result = next(r for r in Checks(ChecksConfig()).run(span(answer)) if r.name.endswith("pii"))
    assert result.label == "pass" and f"first {MAX_CHECKED_CHARS} of {len(answer)} characters" in result.explanation
