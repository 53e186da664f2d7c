"""Builds the cascade a config describes: each tier's judge, behind its gate (limits) and the verdict cache."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.errors import ConfigError, StoreMissing

from .cache import CachedJudge, VerdictStore
from .cascade import Cascade, CascadeConfig
from .limits import GatedJudge, SpendLedger, TierGate, TierLimits
from .redaction import RedactingJudge, RedactionConfig, Redactor
from .server_config import DEFAULT_METRICS, DeepEvalJudgeConfig, OpenAiJudgeConfig
from .verdict import METRICS, Judge

if TYPE_CHECKING:  # numpy loads only when an embedded tier is configured
    from .adaptation import Adaptation
    from .adaptation_store import AdaptationStore

JudgeKind = Literal["embedded", "openai", "deepeval", "none"]
SERVER_KINDS = ("openai", "deepeval")


@dataclass(frozen=True)
class DeepEvalOptions:
    metrics: dict[str, str] = field(default_factory=dict)  # metric name -> deepeval class; empty: the defaults
    threshold: float = 0.5  # a score at or above it passes

    def judge_config(self, server: OpenAiJudgeConfig) -> DeepEvalJudgeConfig:
        return DeepEvalJudgeConfig(server, dict(self.metrics or DEFAULT_METRICS), self.threshold)


@dataclass(frozen=True)
class TierConfig:
    """`embedded` runs the trained model in this process with no server; `openai` is any OpenAI-compatible server
    (`server`); `deepeval` runs deepeval's metrics on such a server."""

    judge: JudgeKind = "embedded"
    model: str = ""  # with judge: embedded, a model directory from `make train-judge`; empty: the shipped model
    # with judge: embedded, an installed adaptation (`tracejudge adapt`): its version, or `latest` (the newest for
    # this model when the process starts; none installed: the model as trained); empty: none
    adaptation: str = ""
    server: OpenAiJudgeConfig | None = None
    limits: TierLimits = field(default_factory=TierLimits)
    # faithfulness claim by claim (two calls: extract the claims, check each against the context); openai only
    claims: bool = False
    deepeval: DeepEvalOptions = field(default_factory=DeepEvalOptions)  # with judge: deepeval
    # Personal data replaced in what is sent to the server; unset: on for the heavy tier, off for the local one
    redaction: RedactionConfig | None = None

    def validate(self, path: str) -> None:
        if self.claims and self.judge != "openai":
            raise ConfigError(f"{path}.claims: only with judge: openai")
        if self.model and self.judge != "embedded":
            raise ConfigError(f"{path}.model: only with judge: embedded (this tier is {self.judge}; a server's "
                              "model goes in server.model)")
        if self.adaptation and self.judge != "embedded":
            raise ConfigError(f"{path}.adaptation: only with judge: embedded (this tier is {self.judge})")
        if self.model and not (Path(self.model) / "model.json").is_file():
            raise ConfigError(f"{path}.model: {self.model!r} holds no model.json (a directory written by "
                              "`make train-judge TRAIN_ARGS='--out DIR'`)")
        if self.deepeval != DeepEvalOptions() and self.judge != "deepeval":
            raise ConfigError(f"{path}.deepeval: only with judge: deepeval (this tier is {self.judge})")
        if self.judge in SERVER_KINDS and self.server is None:
            raise ConfigError(f"{path}.server: required with judge: {self.judge} (base_url and model at least)")
        if self.judge not in SERVER_KINDS and self.server is not None:
            raise ConfigError(f"{path}.server: only used with judge: openai or deepeval (this tier is {self.judge})")
        if self.judge == "deepeval" and self.server is not None:
            self.deepeval.judge_config(self.server).validate(f"{path}.deepeval")
        if self.redaction is not None and self.redaction.enabled and self.judge not in SERVER_KINDS:
            raise ConfigError(f"{path}.redaction: only for a tier that sends text to a server (judge: openai or "
                              f"deepeval; this tier is {self.judge} and sends nothing anywhere)")

    @property
    def metrics(self) -> frozenset[str]:
        """The metrics this tier can judge."""
        if self.judge == "none":
            return frozenset()
        if self.judge == "deepeval":
            return frozenset(self.deepeval.metrics or DEFAULT_METRICS)
        return frozenset(METRICS)


@dataclass(frozen=True)
class JudgesConfig:
    local: TierConfig = field(default_factory=TierConfig)
    heavy: TierConfig = field(default_factory=lambda: TierConfig(judge="none"))
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    cache_ttl: Duration = 86_400.0  # how long a verdict is reused for the same text and judge; 0 = no cache

    def validate(self, path: str) -> None:
        if self.local.judge == "none" and self.heavy.judge == "none":
            raise ConfigError(f"{path}: configure at least one tier (local or heavy)")
        if self.cache_ttl < 0:
            raise ConfigError(f"{path}.cache_ttl: must not be negative")


class JudgeStore(SpendLedger, VerdictStore, Protocol):
    """The judge queue's database, which keeps spend per day and the verdict cache."""


@dataclass
class Judges:
    cascade: Cascade
    gates: dict[str, TierGate]  # by tier name
    tiers: list[Judge]

    async def close(self) -> None:
        for judge in self.tiers:
            await judge.close()


def resolve_adaptations(config: JudgesConfig, store: Callable[[], AdaptationStore], path: str
                        ) -> dict[str, Adaptation]:
    """The installed adaptation each embedded tier's `adaptation:` names, by tier; `path`: the judges' config key,
    for errors."""
    from .adaptation_store import LATEST
    from .embedded_model import DEFAULT_DIR, model_version

    found: dict[str, Adaptation] = {}
    for tier, tier_config in (("local", config.local), ("heavy", config.heavy)):
        wanted = tier_config.adaptation
        if tier_config.judge != "embedded" or not wanted:
            continue
        base = model_version(Path(tier_config.model) if tier_config.model else DEFAULT_DIR)
        installed: list[str] = []
        try:
            opened = store()
        except StoreMissing:  # opened read-only where nothing was ever installed
            adaptation = None
        else:
            try:
                adaptation = opened.latest(base) if wanted == LATEST else opened.get(wanted)
                if adaptation is None and wanted != LATEST:  # for the error: what there is instead
                    installed = [a.version for a in opened.all() if a.base == base]
            finally:
                opened.close()
        if adaptation is None and wanted != LATEST:
            raise ConfigError(f"{path}.{tier}.adaptation: {wanted!r} is not installed for {base} (installed: "
                              f"{', '.join(installed) or 'none'}; `tracejudge adapt` installs one)")
        if adaptation is not None and adaptation.base != base:
            raise ConfigError(f"{path}.{tier}.adaptation: {wanted!r} was fitted on {adaptation.base}, this model is "
                              f"{base}: adapt again (`tracejudge adapt`) after changing the model")
        if adaptation is not None:
            found[tier] = adaptation
    return found


def effective_judge_version(configured: str, config: JudgesConfig, adaptations: Mapping[str, Adaptation]) -> str:
    """The version evaluations, items and spans carry: the configured `judge_version`, then per embedded tier its
    adaptation ("+a-…", which implies the model) or its model ("+m-" and 8 hex of `model_version`), so that a
    retrained, recalibrated or adapted embedded judge is a new judge version without anyone bumping the config."""
    from .embedded_model import DEFAULT_DIR, model_version

    version = configured
    for tier, tier_config in (("local", config.local), ("heavy", config.heavy)):
        if tier_config.judge != "embedded":
            continue
        if tier in adaptations:
            version += f"+{adaptations[tier].version}"
        else:
            model = model_version(Path(tier_config.model) if tier_config.model else DEFAULT_DIR)
            version += f"+m-{model.rsplit('@', 1)[-1][:8]}"
    return version


def build_judges(config: JudgesConfig, store: JudgeStore | None,
                 adaptations: Mapping[str, Adaptation] | None = None) -> Judges:
    """Every judge of `config`, gated and cached (the cache needs `store`); `adaptations` by tier, from
    `resolve_adaptations`."""
    gates: dict[str, TierGate] = {}
    built: dict[str, Judge | None] = {}
    uncached_heavy: Judge | None = None
    tiers: list[Judge] = []
    for tier, tier_config in (("local", config.local), ("heavy", config.heavy)):
        judge = _judge(tier, tier_config, (adaptations or {}).get(tier))
        if judge is None:
            built[tier] = None
            continue
        tiers.append(judge)
        gate = TierGate(tier, tier_config.limits, store)
        gates[tier] = gate
        gated: Judge = GatedJudge(judge, gate, batched=tier_config.judge == "embedded")
        if tier == "heavy":
            uncached_heavy = gated
        built[tier] = CachedJudge(gated, store, config.cache_ttl) if store is not None and config.cache_ttl else gated
    cascade = Cascade(built["local"], built["heavy"], config.cascade, heavy_again=uncached_heavy)
    return Judges(cascade, gates, tiers)


def _judge(tier: str, config: TierConfig, adaptation: Adaptation | None) -> Judge | None:
    if config.judge == "none":
        return None
    if config.judge in SERVER_KINDS:
        judge = _server_judge(tier, config)
        redaction = config.redaction or RedactionConfig(enabled=tier == "heavy")
        return RedactingJudge(judge, Redactor(redaction)) if redaction.enabled else judge
    from .embedded import EmbeddedJudge  # onnxruntime loads only when an embedded tier is configured
    from .embedded_model import DEFAULT_DIR

    return EmbeddedJudge(Path(config.model) if config.model else DEFAULT_DIR, tier=tier, adaptation=adaptation)


def _server_judge(tier: str, config: TierConfig) -> Judge:
    assert config.server is not None  # validate() says so
    # imported here: the openai client (and deepeval) load only when a server tier is configured
    if config.judge == "deepeval":
        from .deepeval_judge import DeepEvalJudge

        return DeepEvalJudge(config.deepeval.judge_config(config.server), tier=tier)
    from .claims import ClaimsJudge
    from .openai_judge import OpenAiJudge

    judge = OpenAiJudge(config.server, tier=tier)
    return ClaimsJudge(judge) if config.claims else judge
