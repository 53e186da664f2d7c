"""Deterministic checks: cheap verdicts on 100% of LLM spans, computed inline in microseconds.

Each check either passes, fails with an explanation, or does not apply (and is then absent). A check never guesses:
one that needs the answer text is skipped when content capture was off.

They run on the event loop, on text a client sent: every check is linear in the text it reads (bounded patterns,
no nested quantifiers over unbounded input) and reads at most MAX_CHECKED_CHARS of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from tracejudge.judge import pii
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.llm_span import LlmSpan

CHECK_PREFIX = "tracejudge.check."

MAX_CHECKED_CHARS = 256 * 1024  # of an answer: the checks look at its beginning, and say so when it is longer
_REFUSAL = re.compile(
    "\\b(?:I(?:['\u2019]m| am) (?:sorry|unable|not able)|I can(?:no|['\u2019])t (?:help|assist|provide|do)|"
    "I (?:won['\u2019]t|will not) (?:help|assist|provide)|as an AI(?: language model)?)\\b", re.IGNORECASE)
# Cheap tests that rule most answers out before a regular expression has to scan them.
_REFUSAL_HINTS = ("sorry", "unable", "not able", "can't", "can\u2019t", "cannot", "won't", "won\u2019t", "will not",
                  "as an ai")


def check_result(check: str, passed: bool, explanation: str = "") -> EvaluationResult:
    """A check's verdict as an evaluation: score 1 (pass) or 0 (fail)."""
    return EvaluationResult(CHECK_PREFIX + check, 1.0 if passed else 0.0, "pass" if passed else "fail", explanation)


@dataclass(frozen=True)
class ChecksConfig:
    min_answer_chars: int = 1  # shorter answers fail `empty_answer`
    max_answer_chars: int = 0  # 0: no limit
    refusal: bool = True
    pii: bool = True
    # Answers to requests that asked for JSON must parse; with a schema they must also validate against it.
    json_schema: dict[str, Any] = field(default_factory=dict)
    # When the context (retrieved documents) is at least this long, the answer must cite it; 0: off.
    citations_required_above_chars: int = 0
    citation_pattern: str = r"\[\d+\]"

    def validate(self, path: str) -> None:
        problems = []
        if self.min_answer_chars < 0 or self.max_answer_chars < 0:
            problems.append(f"{path}: min_answer_chars and max_answer_chars must not be negative")
        if self.json_schema:
            try:
                jsonschema.Draft202012Validator.check_schema(self.json_schema)
            except jsonschema.SchemaError as e:
                problems.append(f"{path}.json_schema: not a valid JSON Schema: {e.message}")
        try:
            re.compile(self.citation_pattern)
        except re.error as e:
            problems.append(f"{path}.citation_pattern: not a valid regular expression: {e}")
        if problems:
            raise ConfigError(problems)


class Checks:
    def __init__(self, config: ChecksConfig) -> None:
        self._config = config
        self._citation = re.compile(config.citation_pattern)
        self._schema = jsonschema.Draft202012Validator(config.json_schema) if config.json_schema else None

    def run(self, span: LlmSpan) -> tuple[EvaluationResult, ...]:
        results = [_truncated(span)] if span.finish_reasons else []
        if not span.output_messages:  # content capture was off: nothing to check the answer of
            return tuple(results)
        whole = span.output_text
        results.append(self._length(whole))
        answer = whole[:MAX_CHECKED_CHARS]
        if self._config.refusal:
            results.append(_refusal(answer))
        if self._config.pii:
            results.append(_pii(answer, len(whole)))
        if _json_requested(span):
            results.append(self._json(whole))
        context_chars = sum(len(d) for d in span.documents)
        if self._config.citations_required_above_chars and context_chars >= self._config.citations_required_above_chars:
            cited = bool(self._citation.search(answer))
            results.append(check_result("citations", cited, "" if cited else
                                       f"no citation matching {self._config.citation_pattern!r} for "
                                       f"{context_chars} characters of retrieved context"))
        return tuple(results)

    def _length(self, answer: str) -> EvaluationResult:
        stripped = answer.strip()
        if len(stripped) < self._config.min_answer_chars:
            return check_result("answer_length", False,
                               f"answer has {len(stripped)} characters, fewer than {self._config.min_answer_chars}")
        if self._config.max_answer_chars and len(stripped) > self._config.max_answer_chars:
            return check_result("answer_length", False,
                               f"answer has {len(stripped)} characters, more than {self._config.max_answer_chars}")
        return check_result("answer_length", True)

    def _json(self, answer: str) -> EvaluationResult:
        try:
            document = json.loads(_unfenced(answer.strip()))
        except json.JSONDecodeError as e:
            return check_result("json", False, f"JSON was requested but the answer is not JSON: {e}")
        except RecursionError:
            return check_result("json", False, "JSON was requested but the answer nests too deeply to parse")
        if self._schema is not None:
            error = jsonschema.exceptions.best_match(self._schema.iter_errors(document))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return check_result("json", False, f"answer violates the schema at {where}: {error.message}")
        return check_result("json", True)


def _truncated(span: LlmSpan) -> EvaluationResult:
    cut = "length" in span.finish_reasons or "max_tokens" in span.finish_reasons
    return check_result("truncated", not cut, "the answer stopped at the token limit" if cut else "")


def _refusal(answer: str) -> EvaluationResult:
    match = refusal(answer)
    return check_result("refusal", match is None, f"refusal: {match!r}" if match else "")


def refusal(answer: str) -> str | None:
    """The refusing phrase of `answer`, or None."""
    lower = answer.lower()
    match = _REFUSAL.search(answer) if any(hint in lower for hint in _REFUSAL_HINTS) else None
    return match.group(0) if match else None


def _unfenced(text: str) -> str:
    """The inside of a ```json ... ``` (or ``` ... ```) fence around the whole text, else the text."""
    if len(text) < 6 or not (text.startswith("```") and text.endswith("```")):
        return text
    inner = text[3:-3]
    return (inner[4:] if inner.startswith("json") else inner).strip()


def _pii(answer: str, whole_chars: int) -> EvaluationResult:
    found = [name for detector, name in (("email", "e-mail address"), ("phone", "phone number"),
                                         ("card", "payment card number"))
             if next(pii.FINDERS[detector](answer), None) is not None]
    scanned = f" (first {len(answer)} of {whole_chars} characters checked)" if whole_chars > len(answer) else ""
    return check_result("pii", not found, f"answer contains: {', '.join(found)}{scanned}" if found else scanned)


def _json_requested(span: LlmSpan) -> bool:
    """OTel GenAI `gen_ai.output.type`, or an OpenAI `response_format` in OpenInference's invocation parameters."""
    if span.attributes.get("gen_ai.output.type") == "json":
        return True
    parameters = span.attributes.get("llm.invocation_parameters")
    if isinstance(parameters, str) and "response_format" in parameters:
        try:
            response_format = json.loads(parameters).get("response_format") or {}
        except (json.JSONDecodeError, AttributeError):
            return False
        return isinstance(response_format, dict) and str(response_format.get("type", "")).startswith("json")
    return False
