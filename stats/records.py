"""What the statistics read and write: one judged evaluation, a series key, an alert (and user feedback, whose
record is pdata's).
Plain frozen values, so the store can keep them as rows and replay can rebuild them byte for byte."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Why quality moved, in the order they are tried: the first that applies is the alert's cause.
PROMPT_CHANGE = "prompt_change"  # a new prompt_version against its predecessor
MODEL_CHANGE = "model_change"  # same prompt version, but the response model or the provider's fingerprint changed
INPUT_DRIFT = "input_drift"  # the queries changed (length or embedding distribution)
UNEXPLAINED = "unexplained"
CAUSES = (PROMPT_CHANGE, MODEL_CHANGE, INPUT_DRIFT, UNEXPLAINED)

# The stratum prefix of spans judged because users complained (feedback:<reason>): chosen by their outcome, so they
# count in calibration and golden sets but not in a series' estimates.
FEEDBACK_STRATUM = "feedback:"


@dataclass(frozen=True, order=True)
class SeriesKey:
    service: str
    prompt_version: str
    model: str  # the model the application asked for (request model; the response model when there is none)
    metric: str

    def __str__(self) -> str:
        return f"{self.service}/{self.prompt_version or '-'}/{self.model or '-'}/{self.metric}"

    @property
    def family(self) -> tuple[str, str, str]:
        """Series that differ only in prompt version compare with each other."""
        return self.service, self.model, self.metric


@dataclass(frozen=True)
class Evaluation:
    """One judged metric of one LLM span, with what makes it attributable (invariant 4) and weightable (3)."""

    trace_id: str  # hex
    span_id: str  # hex, of the judged LLM span
    time_unix_nano: int  # the LLM span's start: series are ordered by when the traffic happened
    service: str
    prompt_version: str
    model: str
    response_model: str
    fingerprint: str  # the provider's model fingerprint (system_fingerprint), "" when not reported
    metric: str
    score: float  # in [0, 1], 1 = good
    passed: bool
    probability: float  # inclusion probability of the sampling decision
    stratum: str
    in_uniform: bool  # also selected by the uniform floor: usable for unweighted estimates
    tier: str
    judge_model: str
    judge_version: str
    latency_s: float = 0.0  # of the LLM call
    tokens: int = 0  # input + output tokens of the LLM call: the cost proxy
    refused: bool = False  # the refusal check failed on the response
    query_words: int = 0
    query_projection: tuple[float, ...] = ()  # low-dimensional projection of the query's embedding, for drift

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(self.service, self.prompt_version, self.model, self.metric)

    @property
    def variant(self) -> str:
        """What answered, inside a series: a change here under an unchanged prompt is a silent model change."""
        return f"{self.response_model or self.model}|{self.fingerprint or '-'}"

    def values(self) -> tuple[Any, ...]:
        """The fields in order, as stored: the projection as a JSON list."""
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        values[-1] = json.dumps(list(self.query_projection))
        return tuple(values)

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> Evaluation:
        """From `values()` as stored (booleans come back as 0/1)."""
        fields = list(values)
        for i in _BOOLEANS:
            fields[i] = bool(fields[i])
        fields[-1] = tuple(json.loads(fields[-1]))
        return cls(*fields)


_BOOLEANS = [i for i, f in enumerate(dataclasses.fields(Evaluation)) if f.type == "bool"]


@dataclass(frozen=True)
class Alert:
    """Quality moved in a series; what moved it, which detector saw it, and example traces to look at."""

    alert_id: str  # deterministic: replay gives the same ids
    time_unix_nano: int  # of the evaluation that raised it
    series: SeriesKey
    cause: str  # one of CAUSES
    detector: str  # cusum | welch | two_proportions | msprt | psi:<feature> | guardrail:<metric>
    summary: str  # one line a person can read
    baseline: str  # the version / variant compared against ("" when none)
    current: str
    effect: float | None = None  # current − baseline, in score units
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n_baseline: int = 0
    n_current: int = 0
    examples: tuple[tuple[str, str], ...] = ()  # (trace_id, span_id) of the lowest-scoring judged spans
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["series"] = str(self.series)
        row.update(service=self.series.service, prompt_version=self.series.prompt_version, model=self.series.model,
                   metric=self.series.metric, examples=json.dumps([list(e) for e in self.examples]),
                   details=json.dumps(self.details, sort_keys=True))
        return row

    def to_json(self) -> str:
        """The webhook body and the replay output: stable key order, so equal alerts are equal bytes."""
        document = dataclasses.asdict(self)
        document["series"] = dataclasses.asdict(self.series)
        document["examples"] = [{"trace_id": t, "span_id": s} for t, s in self.examples]
        return json.dumps(document, sort_keys=True, separators=(",", ":"))


