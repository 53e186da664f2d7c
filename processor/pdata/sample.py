"""A sampling decision, and an LLM span sampled for judging with it: what the judge queue takes in."""

from __future__ import annotations

from dataclasses import dataclass

from tracejudge.processor.pdata.llm_span import LlmSpan


@dataclass(frozen=True, slots=True)
class SamplingDecision:
    sampled: bool
    probability: float  # the inclusion probability p: weight a sampled span by 1/p
    stratum: str  # "uniform", "<attribute>=<value>", or "rule:<name>": what set p
    in_uniform: bool  # sampled by the uniform floor alone, so usable for uniform-only estimates
    scale: float = 1.0  # the share of the configured rates in force (below 1 when the judge budget runs low)


@dataclass(frozen=True, slots=True)
class Sample:
    """A sampled LLM span and why: what the judge queue takes in."""

    span: LlmSpan
    decision: SamplingDecision
