"""tracejudge.judge: deterministic checks, the judge protocol and its tiers, the cascade and its limits and cache,
the durable judge queue.

Public names load on first use, so importing one module (say, the checks on the request path) does not import
every judge client.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CachedJudge": "cache",
    "Cascade": "cascade", "CascadeConfig": "cascade", "CascadeItem": "cascade", "CascadeVerdict": "cascade",
    "Checks": "checks", "ChecksConfig": "checks",
    "ClaimsJudge": "claims",
    "EmbeddedJudge": "embedded",
    "GatedJudge": "limits", "TierGate": "limits", "TierLimits": "limits",
    "DeepEvalJudge": "deepeval_judge",
    "OpenAiJudge": "openai_judge",
    "DeepEvalJudgeConfig": "server_config", "OpenAiJudgeConfig": "server_config",
    "JudgeQueue": "queue", "JudgeQueueConfig": "queue",
    "Judges": "tiers", "JudgesConfig": "tiers", "TierConfig": "tiers", "build_judges": "tiers",
    "Judge": "verdict", "JudgeInput": "verdict", "Verdict": "verdict",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
