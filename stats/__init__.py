"""tracejudge.stats: per-series quality statistics and the alerts that say what changed.

Streaming estimators (weighted and uniform-stratum means, quantiles), detectors (CUSUM, Welch and two-proportion
tests, the mixture SPRT, PSI drift), the series and the monitor that turns evaluations into alerts with a cause, and
the store they live in. Public names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Auroc": "calibration", "Calibration": "calibration", "auroc": "calibration", "calibrate": "calibration",
    "Canary": "canary",
    "Comparison": "compare", "Summary": "compare", "two_proportions": "compare", "welch": "compare",
    "StatsConfig": "config", "WebhookConfig": "config",
    "Cusum": "cusum", "ScoreChart": "cusum",
    "Psi": "drift",
    "QualityMonitor": "monitor",
    "MixtureSprt": "msprt",
    "QueryProjection": "projection",
    "Alert": "records", "Evaluation": "records", "Feedback": "records", "SeriesKey": "records",
    "recover": "replay", "replay": "replay",
    "Series": "series",
    "StatsStore": "store", "Store": "store",
    "Moments": "streaming", "Quantiles": "streaming", "WeightedMean": "streaming",
    "QualityTracker": "tracker",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
