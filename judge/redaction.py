"""Redaction: what a judge server is sent has personal data replaced first. The `pii` check's detectors (e-mail
addresses, phone numbers, card numbers) and the operator's own patterns find it; each find becomes `[EMAIL]`,
`[PHONE]`, `[CARD]` or `[<PATTERN NAME>]`. On by default for the heavy tier (an external API); what was replaced
is counted per kind in the verdict, and so in the decision record.

Detectors are linear in the text; custom patterns run as written (keep them free of nested quantifiers) on at most
the capped texts a judge reads, in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tracejudge.judge import pii
from tracejudge.judge.verdict import Judge, JudgeInput, JudgeWrapper, Verdict
from tracejudge.processor.component.errors import ConfigError


@dataclass(frozen=True)
class RedactionPattern:
    name: str  # the placeholder: [NAME]
    regex: str


@dataclass(frozen=True)
class RedactionConfig:
    enabled: bool = True
    detectors: tuple[str, ...] = pii.DETECTORS
    patterns: tuple[RedactionPattern, ...] = ()

    def validate(self, path: str) -> None:
        problems = [f"{path}.detectors: unknown detector {d!r} (known: {', '.join(pii.DETECTORS)})"
                    for d in self.detectors if d not in pii.DETECTORS]
        for i, pattern in enumerate(self.patterns):
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", pattern.name):
                problems.append(f"{path}.patterns[{i}].name: letters, digits and _ only, starting with a letter")
            try:
                if re.compile(pattern.regex).match(""):
                    problems.append(f"{path}.patterns[{i}].regex: matches the empty string")
            except re.error as e:
                problems.append(f"{path}.patterns[{i}].regex: not a valid regular expression: {e}")
        if problems:
            raise ConfigError(problems)


class Redactor:
    def __init__(self, config: RedactionConfig) -> None:
        self._finders = [(name.upper(), pii.FINDERS[name]) for name in config.detectors]
        self._patterns = [(p.name.upper(), re.compile(p.regex)) for p in config.patterns]

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        """`text` with every find replaced by its placeholder, and how many of each kind; overlapping finds are
        replaced once, by the first that starts (the longer if two start together)."""
        spans = [(start, end, name) for name, find in self._finders for start, end in find(text)]
        spans += [(m.start(), m.end(), name) for name, pattern in self._patterns for m in pattern.finditer(text)
                  if m.end() > m.start()]
        if not spans:
            return text, Counter()
        spans.sort(key=lambda s: (s[0], -s[1]))
        parts, counts, position = [], Counter[str](), 0
        for start, end, name in spans:
            if start < position:
                continue
            parts += [text[position:start], f"[{name}]"]
            counts[name.lower()] += 1
            position = end
        parts.append(text[position:])
        return "".join(parts), counts


class RedactingJudge(JudgeWrapper):
    """In front of a judge that sends text to a server: that judge sees only redacted text. Verdicts say what was
    replaced (`redacted`: kind → count over query, response and context)."""

    def __init__(self, judge: Judge, redactor: Redactor) -> None:
        super().__init__(judge)
        self._redactor = redactor

    async def judge(self, inputs: Sequence[JudgeInput]) -> list[Verdict]:
        redacted = await asyncio.to_thread(lambda: [self._redact(item) for item in inputs])
        verdicts = await self._judge.judge([item for item, _ in redacted])
        return [dataclasses.replace(verdict, redacted=tuple(sorted(counts.items()))) if counts else verdict
                for verdict, (_, counts) in zip(verdicts, redacted, strict=True)]

    def _redact(self, item: JudgeInput) -> tuple[JudgeInput, Counter[str]]:
        counts: Counter[str] = Counter()
        texts = []
        for text in (item.query, item.response, item.context):
            clean, found = self._redactor.redact(text)
            texts.append(clean)
            counts += found
        query, response, context = texts
        return JudgeInput(item.metric, query, response, context), counts
