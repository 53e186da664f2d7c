"""The statistics' settings (`processors.judge_queue.stats` in the YAML): defaults live here only."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError


@dataclass(frozen=True)
class WebhookConfig:
    url: str = ""  # POST each alert here as JSON; "" = no webhook
    timeout: Duration = 5.0
    headers: dict[str, str] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.url: must be an http:// or https:// URL")
        if self.timeout <= 0:
            raise ConfigError(f"{path}.timeout: must be positive")


@dataclass(frozen=True)
class StatsConfig:
    enabled: bool = True
    cusum_k: float = 0.5  # allowance, in sd of a block mean
    cusum_h: float = 5.0  # decision limit, in sd of a block mean: in-control ARL ≈ 465 blocks
    cusum_block: int = 10  # the CUSUM charts means of this many consecutive uniform-stratum scores
    warmup: int = 200  # scores that set a CUSUM reference when no previous version gives one
    min_n: int = 30  # per arm, before a version or model comparison is made
    alpha: float = 0.05  # false-positive rate of each comparison (always-valid for the sequential one)
    power: float = 0.8  # for the minimum detectable drop and the n needed
    drop: float = 0.05  # the score drop that matters: sizes the n needed and the sequential test's mixture
    drift_window: int = 200  # queries per drift window (the first window is the reference)
    drift_bins: int = 10
    drift_alpha: float = 0.01  # per feature and window
    cooldown: Duration = 3600.0  # per series and cause, in the traffic's time: a persisting problem alerts once
    examples: int = 5  # lowest-scoring judged traces linked from an alert
    embeddings: bool = True  # drift on a projection of query embeddings (the shipped MiniLM encoder)
    seed: int = 0  # of the embedding projection
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    # Links from an alert to its example traces in the user's trace UIs: name → URL template with {trace_id} (and
    # optionally {span_id}, {project}), e.g. jaeger: http://localhost:16686/trace/{trace_id}
    trace_links: dict[str, str] = field(default_factory=dict)
    # Raw evaluations (once a checkpoint of their series holds them), feedback and delivered alerts are deleted
    # after this long; the series' state (CUSUM, baselines, drift reference) is kept whatever their age.
    retention: Duration = 90 * 86400.0

    def validate(self, path: str) -> None:
        problems = []
        if self.retention <= 0:
            problems.append(f"{path}.retention: must be positive")
        if self.cusum_k < 0 or self.cusum_h <= 0:
            problems.append(f"{path}.cusum_k / cusum_h: need k >= 0 and h > 0 (in sd units; defaults 0.5 and 5)")
        problems += [f"{path}.{name}: must be at least 2" for name in ("warmup", "min_n", "drift_bins")
                     if getattr(self, name) < 2]
        problems += [f"{path}.{name}: must be in (0, 1)" for name in ("alpha", "power", "drift_alpha")
                     if not 0 < getattr(self, name) < 1]
        if self.cusum_block < 1:
            problems.append(f"{path}.cusum_block: must be at least 1")
        if self.drop <= 0:
            problems.append(f"{path}.drop: must be positive")
        if self.drift_window < 2 * self.drift_bins:
            problems.append(f"{path}.drift_window: must be at least twice drift_bins")
        for name, template in self.trace_links.items():
            if not template.startswith(("http://", "https://")) or "{trace_id}" not in template:
                problems.append(f"{path}.trace_links.{name}: an http(s) URL template holding {{trace_id}}")
            else:
                try:
                    template.format(trace_id="", span_id="", project="")
                except (KeyError, IndexError, ValueError) as e:
                    problems.append(f"{path}.trace_links.{name}: only {{trace_id}}, {{span_id}} and {{project}} "
                                    f"can be filled in ({e!r})")
        if self.cooldown < 0 or self.examples < 0:
            problems.append(f"{path}.cooldown / examples: must not be negative")
        if problems:
            raise ConfigError(problems)
