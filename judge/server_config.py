"""Settings of the judges that call a server, kept apart from the judges themselves so that reading a config never
imports the `openai` client or deepeval (half a second and ~40 MB the embedded judge does not need)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError


@dataclass(frozen=True)
class OpenAiJudgeConfig:
    base_url: str
    model: str
    api_key: str = "none"  # local servers usually ignore it
    timeout: Duration = 30.0
    max_retries: int = 3  # for 429, 5xx and timeouts; auth and billing errors are never retried
    max_output_tokens: int = 400  # bounds each verdict's cost; a verdict needs well under 200
    usd_per_million_input_tokens: float = 0.0
    usd_per_million_output_tokens: float = 0.0

    def validate(self, path: str) -> None:
        problems = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"{path}.base_url: must start with http:// or https://")
        if self.max_output_tokens < 16:
            problems.append(f"{path}.max_output_tokens: must be at least 16 (a verdict is a JSON object)")
        if self.max_retries < 0:
            problems.append(f"{path}.max_retries: must not be negative")
        if problems:
            raise ConfigError(problems)


# The deepeval metrics this tier runs: judged by an LLM, single-turn, and determined by the query, the response and
# the context alone (no expected output, tools or required arguments). In deepeval 4 every one of them scores
# 1 = pass, so no score is inverted here: Hallucination, Bias and Toxicity used to score the share of violations,
# and deepeval 4 turned them round itself (with a one-time DeprecationWarning, which `_metric` silences).
METRIC_CLASSES = frozenset(
    {
        "AnswerRelevancyMetric",
        "BiasMetric",
        "ContextualRelevancyMetric",
        "FaithfulnessMetric",
        "HallucinationMetric",
        "PIILeakageMetric",
        "ToxicityMetric",
    }
)
DEFAULT_METRICS = {"faithfulness": "FaithfulnessMetric", "relevancy": "AnswerRelevancyMetric"}


@dataclass(frozen=True)
class DeepEvalJudgeConfig:
    """deepeval's steps answer with lists (claims, truths, one verdict and reason each): give `server` a
    `max_output_tokens` of 1000 or more, or long answers are cut short and end unjudged (parse_error)."""

    server: OpenAiJudgeConfig
    # our metric name -> the deepeval metric class that judges it (one of METRIC_CLASSES); replaces the defaults
    metrics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_METRICS))
    threshold: float = 0.5  # a score at or above it passes

    def validate(self, path: str) -> None:
        problems = []
        if not self.metrics:
            problems.append(f"{path}.metrics: name at least one metric, e.g. faithfulness: FaithfulnessMetric")
        for name, class_name in self.metrics.items():
            if class_name not in METRIC_CLASSES:
                problems.append(
                    f"{path}.metrics.{name}: {class_name!r} is not a deepeval metric this judge runs; "
                    f"use one of {', '.join(sorted(METRIC_CLASSES))}"
                )
        if not 0 <= self.threshold <= 1:
            problems.append(f"{path}.threshold: must be in [0, 1]")
        if problems:
            raise ConfigError(problems)
