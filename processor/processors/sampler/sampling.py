"""Which LLM spans to judge: a seeded, trace-consistent sampler that records every inclusion probability.

Each trace gets u = hash(seed, trace id) in [0, 1); a span is sampled when u < p, where p is the largest rate that
applies to it: the uniform floor, its stratum's rate, or the rate of a targeted rule it matches. Because u depends on
the trace alone, a trace is in or out as a whole for a given rate, and samples nest: whatever is sampled at rate r is
also sampled at any r' > r. p is recorded with each decision, so estimates can be weighted by 1/p (Horvitz-Thompson),
and `in_uniform` (u < floor) marks the spans that also belong to the uniform sample.
"""

from __future__ import annotations

import collections
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Reference
from tracejudge.processor.component.host import RateScale
from tracejudge.processor.component.storage import database_reference
from tracejudge.processor.pdata.evaluation import EvaluationResult
from tracejudge.processor.pdata.llm_span import LlmSpan
from tracejudge.processor.pdata.sample import SamplingDecision

UNIFORM = "uniform"
# How many prompt versions the "new prompt version" rule remembers (least recently seen are forgotten).
MAX_TRACKED_VERSIONS = 10_000
# (service, prompt version, now) → when that version was first seen, wherever that is kept
FirstSeen = Callable[[str, str, float], float]


@dataclass(frozen=True)
class SamplingRule:
    """A targeted rule: spans matching every condition given are sampled at `rate` (or more)."""

    name: str
    rate: float = 1.0
    status: Literal["", "error", "ok", "unset"] = ""
    failed_check: bool = False
    latency_above: Duration = 0.0
    attribute: str = ""
    equals: str = ""  # with `attribute`: its value as text must equal this; without it, the attribute must exist
    new_prompt_version_hours: float = 0.0  # the span's prompt version was first seen less than this long ago
    new_prompt_version_spans: int = 0  # ... or fewer than this many spans ago

    def validate(self, path: str) -> None:
        problems = []
        if not self.name:
            problems.append(f"{path}.name: required")
        if not 0 <= self.rate <= 1:
            problems.append(f"{path}.rate: must be in [0, 1]")
        if self.equals and not self.attribute:
            problems.append(f"{path}.equals: needs `attribute`")
        conditions = (self.status, self.failed_check, self.latency_above, self.attribute,
                      self.new_prompt_version_hours, self.new_prompt_version_spans)
        if not any(conditions):
            problems.append(f"{path}: give at least one condition (status, failed_check, latency_above, attribute, "
                            "new_prompt_version_hours, new_prompt_version_spans)")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class StrataConfig:
    attribute: str  # e.g. customer.tier
    rates: dict[str, float] = field(default_factory=dict)  # value → rate; other values get the uniform rate

    def validate(self, path: str) -> None:
        bad = [value for value, rate in self.rates.items() if not 0 <= rate <= 1]
        if bad:
            raise ConfigError([f"{path}.rates.{value}: must be in [0, 1]" for value in bad])


@dataclass(frozen=True)
class SamplerConfig:
    seed: int = 0
    rate: float = 0.05  # the uniform floor
    strata: StrataConfig | None = None
    rules: tuple[SamplingRule, ...] = ()
    # a file_storage or postgresql extension where first sightings of prompt versions are kept: with several
    # instances on one postgresql, the new-prompt-version rule decides alike on all of them ("": in memory)
    storage: str = ""

    def references(self, path: str) -> list[Reference]:
        return [database_reference(self.storage, f"{path}.storage")] if self.storage else []

    def validate(self, path: str) -> None:
        if not 0 <= self.rate <= 1:
            raise ConfigError(f"{path}.rate: must be in [0, 1]")
        names = [rule.name for rule in self.rules]
        for name in {n for n in names if names.count(n) > 1}:
            raise ConfigError(f"{path}.rules: rule name {name!r} is used more than once")


class Sampler:
    def __init__(self, config: SamplerConfig, clock: Callable[[], float] = time.time,
                 scale: RateScale | None = None, first_seen: FirstSeen | None = None) -> None:
        self._config = config
        self._first_seen = first_seen
        self._scale = scale if scale is not None else RateScale()
        self._seed = config.seed.to_bytes(8, "big", signed=True)
        self._clock = clock
        # (service, prompt version) → (first seen unix s, spans seen), least recently used first
        self._versions: collections.OrderedDict[tuple[str, str], tuple[float, int]] = collections.OrderedDict()

    def position(self, trace_id: str) -> float:
        """u in [0, 1), the same for every span of a trace and every run with the same seed."""
        digest = hashlib.blake2b(self._seed + bytes.fromhex(trace_id), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def decide(self, span: LlmSpan, checks: tuple[EvaluationResult, ...] = ()) -> SamplingDecision:
        age_s, seen = self._observe_version(span)
        probability, stratum = self._config.rate, UNIFORM
        strata = self._config.strata
        if strata is not None:
            value = span.attributes.get(strata.attribute)
            rate = strata.rates.get(str(value)) if value is not None else None
            if rate is not None:
                probability, stratum = rate, f"{strata.attribute}={value}"
        for rule in self._config.rules:
            if rule.rate > probability and _matches(rule, span, checks, age_s, seen):
                probability, stratum = rule.rate, f"rule:{rule.name}"
        u = self.position(span.trace_id)
        scale = self._scale.value
        probability *= scale
        return SamplingDecision(u < probability, probability, stratum, u < self._config.rate * scale, scale)

    def _observe_version(self, span: LlmSpan) -> tuple[float, int]:
        """How long ago, and how many spans ago, this span's prompt version was first seen (this one counted)."""
        key = (span.service, span.prompt_version)
        now = self._clock()
        if key in self._versions:
            first_seen, count = self._versions.pop(key)
        else:  # shared, the first sighting of any instance; else this one's
            first_seen = self._first_seen(*key, now) if self._first_seen is not None else now
            count = 0
        self._versions[key] = (first_seen, count + 1)
        if len(self._versions) > MAX_TRACKED_VERSIONS:
            self._versions.popitem(last=False)
        return now - first_seen, count


def _matches(rule: SamplingRule, span: LlmSpan, checks: tuple[EvaluationResult, ...], version_age_s: float,
             version_seen: int) -> bool:
    if rule.status and span.status != rule.status:
        return False
    if rule.failed_check and not any(not result.passed for result in checks):
        return False
    if rule.latency_above and span.latency_s <= rule.latency_above:
        return False
    if rule.attribute:
        value = span.attributes.get(rule.attribute)
        if value is None or (rule.equals and _text(value) != rule.equals):
            return False
    if rule.new_prompt_version_hours or rule.new_prompt_version_spans:
        if not span.prompt_version:
            return False
        young = rule.new_prompt_version_hours and version_age_s < rule.new_prompt_version_hours * 3600
        few = rule.new_prompt_version_spans and version_seen < rule.new_prompt_version_spans
        if not (young or few):
            return False
    return True


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
