"""One series' state: the population estimates of its scores, the variants (response model and fingerprint) that
answered in it, its CUSUM, drift detectors and the worst recent examples; all of it JSON for the store.

Estimates over every judged item are Horvitz–Thompson weighted (1/π); the detectors read only the uniform stratum,
a simple random sample of the traffic, so a change in what the targeted rules pick cannot look like a quality change.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from .canary import Canary
from .config import StatsConfig
from .cusum import ScoreChart
from .drift import Psi
from .records import FEEDBACK_STRATUM, Evaluation, SeriesKey
from .streaming import Moments, Quantiles, WeightedMean


class Arm:
    """The uniform-stratum scores and pass counts of one version or variant, and its guardrail values."""

    def __init__(self) -> None:
        self.scores = Moments()
        self.passed = 0
        self.latency = Quantiles()
        self.first_unix_nano = 0
        self.last_unix_nano = 0

    def update(self, e: Evaluation) -> None:
        self.scores.update(e.score)
        self.passed += e.passed
        self.latency.update(e.latency_s)
        self.first_unix_nano = self.first_unix_nano or e.time_unix_nano
        self.last_unix_nano = max(self.last_unix_nano, e.time_unix_nano)

    @property
    def n(self) -> int:
        return self.scores.n

    def state(self) -> dict[str, Any]:
        return {"scores": self.scores.state(), "passed": self.passed, "latency": self.latency.state(),
                "first_unix_nano": self.first_unix_nano, "last_unix_nano": self.last_unix_nano}

    def restore(self, state: dict[str, Any]) -> None:
        self.scores.restore(state["scores"])
        self.latency.restore(state["latency"])
        self.passed, self.first_unix_nano, self.last_unix_nano = (state["passed"], state["first_unix_nano"],
                                                                  state["last_unix_nano"])


class Series:
    def __init__(self, key: SeriesKey, config: StatsConfig) -> None:
        self.key = key
        self.name = str(key)
        self._config = config
        # Which judge scores this series (the judge stage's judge_version): kept across a restart, which is what a
        # new judge version causes (scores of two judges are not one series)
        self.judge_version = ""
        self.judge_versions: list[str] = []  # every one seen, oldest first
        self.judge_seen_unix_nano = 0  # the last evaluation by the current one
        self.judge_changes: list[tuple[int, str, str]] = []  # (when, from, to), the last few
        self.left_out = 0  # evaluations by a superseded judge version after a switch, not observed
        self._reset()

    def _reset(self) -> None:
        config = self._config
        self.estimate = WeightedMean()  # every judged item, weighted
        self.pass_rate = WeightedMean()
        self.uniform = Arm()  # the uniform stratum only: the detectors' input
        self.latency = Quantiles()
        self.tokens = Quantiles()
        self.refusals = WeightedMean()
        self.cusum = self.chart()
        self.canary = Canary(config)  # sequential tests against the baseline version, while both get traffic
        self.cusum_since_unix_nano = 0  # when the current CUSUM run started (creation, or the last restart)
        self.cusum_reference = "warm-up"  # or "baseline:<series>": taken from the previous version
        self.baseline = ""  # the previous prompt version's series, str(key), when this one replaced it
        self.variants: dict[str, Arm] = {}  # uniform-stratum arms
        # A change is a variant never seen in this series: providers rotate among a few fingerprints, and going
        # back and forth between known ones is not news.
        self.known_variants: list[str] = []
        self.variant = ""  # the newest
        self.previous_variant = ""  # the newest before it
        self.variant_changed_unix_nano = 0
        self.drift: dict[str, Psi] = {}  # score, query_words, query_embedding_<i>
        self.input_drift_unix_nano = 0  # the last input drift alarm
        self.drift_since: dict[str, int] = {}  # drift detector -> when its reference window began
        self.lowest: list[tuple[float, int, str, str]] = []  # (-score, time, trace, span) since the CUSUM run began
        self.comparisons: dict[str, dict[str, Any]] = {}  # detector -> the last comparison's result
        self.next_comparison: dict[str, tuple[int, int]] = {}  # detector -> (n at which it looks again, looks so far)
        self.last_alert: dict[str, int] = {}  # cause -> time of the last alert, for the cooldown
        self.updated_unix_nano = 0

    def observe(self, e: Evaluation) -> None:
        """Everything but the detectors' decisions (the monitor makes those). Spans judged because of feedback are
        left out: their inclusion depends on their outcome, so no weight makes them an unbiased sample."""
        if e.stratum.startswith(FEEDBACK_STRATUM):
            return
        self.estimate.update(e.score, e.probability)
        self.pass_rate.update(float(e.passed), e.probability)
        self.refusals.update(float(e.refused), e.probability)
        self.latency.update(e.latency_s)
        self.tokens.update(float(e.tokens))
        self.updated_unix_nano = max(self.updated_unix_nano, e.time_unix_nano)
        if e.variant not in self.known_variants:
            if self.variant:
                self.previous_variant = self.variant
                self.variant_changed_unix_nano = e.time_unix_nano
            self.variant = e.variant
            self.known_variants.append(e.variant)
        if not e.in_uniform:
            return
        self.uniform.update(e)
        arm = self.variants.get(e.variant)
        if arm is None:
            arm = self.variants[e.variant] = Arm()
        arm.update(e)
        values = {"score": e.score, "query_words": math.log1p(e.query_words),
                  **{f"query_embedding_{i}": x for i, x in enumerate(e.query_projection)}}
        for name, x in values.items():
            if name not in self.drift:
                self.restart_drift(name, e.time_unix_nano)
            self.drift[name].update(x)
        entry = (-e.score, e.time_unix_nano, e.trace_id, e.span_id)  # a max-heap on score: drop the best
        if len(self.lowest) < self._config.examples:
            heapq.heappush(self.lowest, entry)
        elif self._config.examples:
            heapq.heappushpop(self.lowest, entry)

    def examples(self) -> tuple[tuple[str, str], ...]:
        """The lowest-scoring judged spans of the current CUSUM run, worst (then latest) first."""
        return tuple((trace, span) for _, _, trace, span in sorted(self.lowest, key=lambda x: (-x[0], -x[1])))

    def restart_drift(self, name: str, now_unix_nano: int) -> None:
        """A new reference window from now on (at first, and after an alarm: the new distribution is the norm)."""
        config = self._config
        self.drift[name] = Psi(config.drift_bins, config.drift_window, config.drift_alpha)
        self.drift_since[name] = now_unix_nano

    def chart(self, mean: float | None = None, sd: float | None = None) -> ScoreChart:
        config = self._config
        return ScoreChart(config.cusum_k, config.cusum_h, config.cusum_block, config.warmup, mean=mean, sd=sd)

    def judged_by(self, e: Evaluation, grace_s: float) -> bool:
        """Follows the judge version of `e`; False when `e` must be left out. A version not seen before starts the
        series' scores again (no alert: the application did not change; its predecessor, compared only once both
        are scored by one judge, stays); so does a return to an earlier one, if the current
        one has not been seen for `grace_s` of traffic time. Within it, an earlier version's evaluations are
        stragglers of a rolling switch (a process not restarted yet) and are left out."""
        version = e.judge_version
        if version == self.judge_version:
            self.judge_seen_unix_nano = max(self.judge_seen_unix_nano, e.time_unix_nano)
            return True
        if not self.judge_version:
            self.judge_version, self.judge_versions, self.judge_seen_unix_nano = version, [version], e.time_unix_nano
            return True
        if version in self.judge_versions and e.time_unix_nano - self.judge_seen_unix_nano < grace_s * 1e9:
            self.left_out += 1
            return False
        self.judge_changes = [*self.judge_changes[-4:], (e.time_unix_nano, self.judge_version, version)]
        self.judge_version, self.judge_seen_unix_nano = version, e.time_unix_nano
        if version not in self.judge_versions:
            self.judge_versions.append(version)
        # what the series is (its predecessor version) and the alert cooldown outlive the judge; its scores do not
        baseline, last_alert = self.baseline, self.last_alert
        self._reset()
        self.baseline, self.last_alert = baseline, last_alert
        self.cusum_since_unix_nano = e.time_unix_nano
        return True

    def restart_cusum(self, now_unix_nano: int) -> None:
        """After an alarm: learn a new reference from the next warm-up, forget the run's examples."""
        self.cusum = self.chart()
        self.cusum_since_unix_nano = now_unix_nano
        self.cusum_reference = "warm-up"
        self.lowest = []

    def status(self) -> dict[str, Any]:
        """What a person reads about this series: estimates with their CI and n, the last comparisons."""
        low, high = self.estimate.ci95 if self.estimate.n >= 2 else (math.nan, math.nan)
        u_low, u_high = self.uniform.scores.ci95
        return {
            "series": self.name,
            "n": self.estimate.n,
            "mean_score (weighted, all judged)": _round(self.estimate.get()),
            "ci95 (weighted)": [_round(low), _round(high)],
            "pass_rate (weighted)": _round(self.pass_rate.get()),
            "n_uniform": self.uniform.n,
            "mean_score (uniform stratum)": _round(self.uniform.scores.get()),
            "ci95 (uniform stratum)": [_round(u_low), _round(u_high)],
            "latency_p95_s": _round(self.latency.get(0.95)) if self.latency.n else None,
            "tokens_p50": _round(self.tokens.get(0.5)) if self.tokens.n else None,
            "refusal_rate (weighted)": _round(self.refusals.get()),
            "variant": self.variant, "previous_variant": self.previous_variant,
            "baseline": self.baseline, "cusum": _round(self.cusum.get()), "cusum_limit": self.cusum.h,
            "cusum_reference": self.cusum_reference,
            "judge_version": self.judge_version,
            "judge_changes": [{"at_unix_nano": t, "from": old, "to": new} for t, old, new in self.judge_changes],
            "left_out (superseded judge version)": self.left_out,
            "comparisons": self.comparisons,
        }

    def state(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate.state(), "pass_rate": self.pass_rate.state(), "uniform": self.uniform.state(),
            "latency": self.latency.state(), "tokens": self.tokens.state(), "refusals": self.refusals.state(),
            "cusum": self.cusum.state(), "canary": self.canary.state(),
            "cusum_since_unix_nano": self.cusum_since_unix_nano, "cusum_reference": self.cusum_reference,
            "baseline": self.baseline, "variants": {v: arm.state() for v, arm in self.variants.items()},
            "variant": self.variant, "previous_variant": self.previous_variant,
            "variant_changed_unix_nano": self.variant_changed_unix_nano, "known_variants": self.known_variants,
            "drift": {name: d.state() for name, d in self.drift.items()},
            "input_drift_unix_nano": self.input_drift_unix_nano, "drift_since": self.drift_since,
            "lowest": self.lowest,
            "comparisons": self.comparisons, "next_comparison": self.next_comparison,
            "last_alert": self.last_alert, "updated_unix_nano": self.updated_unix_nano,
            "judge_version": self.judge_version, "judge_versions": self.judge_versions,
            "judge_seen_unix_nano": self.judge_seen_unix_nano, "judge_changes": self.judge_changes,
            "left_out": self.left_out,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._reset()
        for name in ("estimate", "pass_rate", "uniform", "latency", "tokens", "refusals"):
            getattr(self, name).restore(state[name])
        self.cusum.restore(state["cusum"])  # k, h, block and warm-up from the config: tuning applies to running series
        self.canary.restore(state["canary"])
        for name in ("cusum_since_unix_nano", "cusum_reference", "baseline", "variant", "previous_variant",
                     "variant_changed_unix_nano", "known_variants", "input_drift_unix_nano", "drift_since",
                     "comparisons", "next_comparison", "last_alert", "updated_unix_nano"):
            setattr(self, name, state[name])
        self.next_comparison = {detector: (due, looks) for detector, (due, looks) in self.next_comparison.items()}
        # checkpoints written before judge versions were followed have none of these
        self.judge_version = state.get("judge_version", "")
        self.judge_versions = list(state.get("judge_versions", []))
        self.judge_seen_unix_nano = state.get("judge_seen_unix_nano", 0)
        self.judge_changes = [(t, old, new) for t, old, new in state.get("judge_changes", [])]
        self.left_out = state.get("left_out", 0)
        self.lowest = [(entry[0], entry[1], entry[2], entry[3]) for entry in state["lowest"]]
        for variant, arm_state in state["variants"].items():
            self.variants[variant] = Arm()
            self.variants[variant].restore(arm_state)
        for name, drift_state in state["drift"].items():
            self.drift.setdefault(name, Psi(self._config.drift_bins, self._config.drift_window,
                                            self._config.drift_alpha)).restore(drift_state)


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)
