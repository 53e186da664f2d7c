"""Feeds judged evaluations into their series and decides the alerts: which detector saw quality move, and why.

Detectors (uniform-stratum scores only): a CUSUM per series; Welch and two-proportion tests of a new prompt version
against the previous one, and of a new variant (response model or fingerprint) against the previous variant, at
min_n and each doubling of n after it (alpha spent over the looks); sequential tests with guardrails while a
candidate and its baseline both get traffic; PSI drift on query length, query embeddings and the score
distribution.

Scores of different judge versions (the judge stage's `judge_version`, which names an installed adaptation) are
kept apart: a series restarts when its judge changes, and versions are compared only under one judge
(`Series.judged_by`).

The cause is the first that applies: a new prompt version (its CUSUM's reference is the previous version's, or the
comparison is between versions) → prompt_change; a new variant since the detector's reference began →
model_change; input drift since then → input_drift; else unexplained. An alert for a series and cause is suppressed
for `cooldown` of traffic time after the last one. Deterministic: the same evaluations in the same order give the
same alerts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from .compare import Comparison, Summary, two_proportions, welch
from .config import StatsConfig
from .records import INPUT_DRIFT, MODEL_CHANGE, PROMPT_CHANGE, UNEXPLAINED, Alert, Evaluation, SeriesKey
from .series import Arm, Series

INPUT_FEATURES = ("query_words", "query_embedding_")
# After a switch of judge version, evaluations by the earlier one are stragglers for this long (traffic time)
JUDGE_SWITCH_GRACE_S = 600.0


class QualityMonitor:
    def __init__(self, config: StatsConfig, states: Mapping[SeriesKey, dict[str, Any]] | None = None) -> None:
        self._config = config
        self.series: dict[SeriesKey, Series] = {}
        self._named: dict[str, Series] = {}
        self._candidates: dict[str, list[Series]] = {}  # baseline name -> the series that replaced it
        for key, state in (states or {}).items():
            series = Series(key, config)
            series.restore(state)
            self._add(series)
        self.changed: set[SeriesKey] = set()  # series whose state the store has not saved yet

    def _add(self, series: Series) -> None:
        self.series[series.key] = series
        self._named[series.name] = series
        if series.baseline:
            self._candidates.setdefault(series.baseline, []).append(series)

    def observe(self, evaluations: Iterable[Evaluation]) -> list[Alert]:
        alerts: list[Alert] = []
        for e in evaluations:
            alerts += self._observe(e)
        return alerts

    def _observe(self, e: Evaluation) -> list[Alert]:
        key = e.key
        series = self.series.get(key) or self._create(e, key)
        self.changed.add(key)
        if not series.judged_by(e, JUDGE_SWITCH_GRACE_S):
            return []
        windows = {name: d.windows for name, d in series.drift.items()}
        series.observe(e)
        if not e.in_uniform:
            return []
        for other in self._candidates.get(series.name, ()):
            if other.canary.running and other.judge_version == series.judge_version:
                other.canary.update(e, "control")
                self.changed.add(other.key)
        series.canary.update(e, "treatment")
        alerts = [*self._drift(series, e, windows), *self._cusum(series, e), *self._versions(series, e),
                  *self._variants(series, e), *self._canary(series, e)]
        return [a for a in alerts if a is not None]

    def _create(self, e: Evaluation, key: SeriesKey) -> Series:
        series = Series(key, self._config)
        series.cusum_since_unix_nano = e.time_unix_nano
        # the previous prompt version, scored by the same judge: another judge's scores are no baseline
        family = [s for s in self.series.values()
                  if s.key.family == key.family and s.judge_version == e.judge_version]
        if family:
            baseline = max(family, key=lambda s: (s.updated_unix_nano, s.name))
            series.baseline = baseline.name
            scores = baseline.uniform.scores
            if scores.n >= self._config.warmup:
                series.cusum = series.chart(scores.get(), scores.sd)
                series.cusum_reference = f"baseline:{baseline.name}"
            if baseline.uniform.n >= self._config.min_n:
                series.canary.start(baseline.uniform.latency.get(0.95))
        self._add(series)
        return series

    def _cause(self, series: Series, since_unix_nano: int) -> str:
        """Why the scores since `since_unix_nano` (the start of the detector's evidence) moved."""
        if series.cusum_reference.startswith("baseline:"):
            return PROMPT_CHANGE
        if series.variant_changed_unix_nano >= since_unix_nano and series.variant_changed_unix_nano:
            return MODEL_CHANGE
        if series.input_drift_unix_nano >= since_unix_nano and series.input_drift_unix_nano:
            return INPUT_DRIFT
        return UNEXPLAINED

    def _cusum(self, series: Series, e: Evaluation) -> list[Alert | None]:
        chart = series.cusum
        chart.update(e.score)
        if chart.alarm is None or chart.reference is None:
            return []
        reference, reference_sd = chart.reference
        shifted, n = chart.shifted_mean or reference, chart.shifted_n
        result = {"direction": chart.alarm, "reference_mean": reference, "reference_sd": reference_sd,
                  "reference": series.cusum_reference, "shifted_mean": shifted, "n": n,
                  "at_unix_nano": e.time_unix_nano}
        series.comparisons["cusum"] = result
        alert = None
        if chart.alarm == "down":
            cause = self._cause(series, series.cusum_since_unix_nano)
            baseline, current = self._versions_of(series, cause)
            alert = self._alert(series, e, cause, "cusum", baseline, current, effect=shifted - reference,
                                n_baseline=0, n_current=n, details={"h": chart.h, "k": chart.k, "block": chart.block,
                                                                          "reference": series.cusum_reference},
                                summary=f"mean score about {shifted:.3f} over the last {n} uniform-sample "
                                        f"evaluations, against a reference of {reference:.3f} "
                                        f"(CUSUM of {chart.block}-score means crossed h={chart.h:g} sd)")
        series.restart_cusum(e.time_unix_nano)
        return [alert]

    def _versions_of(self, series: Series, cause: str) -> tuple[str, str]:
        if cause == PROMPT_CHANGE:
            return series.baseline, series.name
        if cause == MODEL_CHANGE:
            return series.previous_variant, series.variant
        return "", series.variant

    def _look(self, series: Series, detector: str, n: int) -> int:
        """Fixed-n tests look at min_n and at each doubling of n after it; returns the look's number (1, 2, ...),
        0 when none is due."""
        due, looks = series.next_comparison.get(detector, (self._config.min_n, 0))
        if n < due:
            return 0
        series.next_comparison[detector] = (2 * n, looks + 1)
        return looks + 1

    def _versions(self, series: Series, e: Evaluation) -> list[Alert | None]:
        baseline = self._named.get(series.baseline)
        if (baseline is None or baseline.uniform.n < self._config.min_n
                or baseline.judge_version != series.judge_version):
            return []
        look = self._look(series, "versions", series.uniform.n)
        if not look:
            return []
        return [self._compare(series, e, "versions", look, PROMPT_CHANGE, baseline.uniform, series.uniform,
                              series.baseline, series.name)]

    def _variants(self, series: Series, e: Evaluation) -> list[Alert | None]:
        if not series.previous_variant or series.variant not in series.variants:
            return []
        before, now = series.variants[series.previous_variant], series.variants[series.variant]
        if before.n < self._config.min_n or now.n < self._config.min_n:
            return []
        detector = f"variants:{series.previous_variant}->{series.variant}"
        look = self._look(series, detector, now.n)
        if not look:
            return []
        return [self._compare(series, e, detector, look, MODEL_CHANGE, before, now, series.previous_variant,
                              series.variant)]

    def _compare(self, series: Series, e: Evaluation, detector: str, look: int, cause: str, before: Arm, now: Arm,
                 baseline: str, current: str) -> Alert | None:
        """Welch on scores and the two-proportion test on pass rates. Repeated looks spend alpha: alpha/2 at the
        first, alpha/4 at the second, ..., split between the two tests, so over every look of a comparison the
        chance of a false alert stays under alpha."""
        config = self._config
        alpha = config.alpha / 2**look / 2
        try:
            means = welch(Summary.of(before.scores), Summary.of(now.scores), alpha, config.power, config.drop)
        except ValueError as error:
            series.comparisons[detector] = {"error": str(error), "n": [before.n, now.n]}
            return None
        rates: Comparison | None = None
        with contextlib.suppress(ValueError):  # every item passed in both: only the means say anything
            rates = two_proportions(before.passed, before.n, now.passed, now.n, alpha, config.power, config.drop)
        series.comparisons[detector] = {"welch": _plain(means), "two_proportions": _plain(rates) if rates else None,
                                        "baseline": baseline, "current": current, "look": look,
                                        "at_unix_nano": e.time_unix_nano}
        worst = means if means.regressed or rates is None or not rates.regressed else rates
        if not worst.regressed:
            return None
        return self._alert(series, e, cause, worst.test, baseline, current, effect=worst.effect,
                           ci=(worst.ci_low, worst.ci_high), p_value=worst.p_value, n_baseline=worst.n_baseline,
                           n_current=worst.n_current,
                           details={"minimum_detectable_drop": worst.minimum_detectable_drop,
                                    "n_needed_per_arm": worst.n_needed_per_arm,
                                    "standardized_effect": worst.standardized_effect},
                           summary=f"{'pass rate' if worst.test == 'two_proportions' else 'mean score'} "
                                   f"{worst.baseline:.3f} -> {worst.current:.3f} ({worst.effect:+.3f}, "
                                   f"95% CI {worst.ci_low:+.3f}..{worst.ci_high:+.3f}, p={worst.p_value:.2g}, "
                                   f"n {worst.n_baseline} vs {worst.n_current})")

    def _canary(self, series: Series, e: Evaluation) -> list[Alert | None]:
        canary = series.canary
        if not canary.running:
            return []
        series.comparisons["canary"] = canary.summary()
        alerts: list[Alert | None] = []
        for metric in canary.regressed:
            if metric in canary.reported:
                continue
            canary.reported.append(metric)
            test = canary.tests[metric]
            detector = "msprt" if metric == "score" else f"guardrail:{metric}"
            alerts.append(self._alert(series, e, PROMPT_CHANGE, detector, series.baseline, series.name,
                                      effect=test.get(), p_value=test.p_value,
                                      n_baseline=test.arms["control"].n, n_current=test.arms["treatment"].n,
                                      details={"canary": canary.verdict},
                                      summary=f"{metric} regressed against the baseline under continuous "
                                              f"monitoring (always-valid p={test.p_value:.2g})"))
        return alerts

    def _drift(self, series: Series, e: Evaluation, windows: dict[str, int]) -> list[Alert | None]:
        """`windows`: each detector's window count before this evaluation; a window completed if it grew."""
        alerts: list[Alert | None] = []
        # input features first: input drift found in the same window explains a moved score distribution
        ordered = sorted(series.drift.items(), key=lambda item: not item[0].startswith(INPUT_FEATURES))
        for name, detector in ordered:
            if detector.windows == windows.get(name, 0) or not detector.alarm:
                continue
            is_input = name.startswith(INPUT_FEATURES)
            if is_input:
                series.input_drift_unix_nano = e.time_unix_nano
            cause = INPUT_DRIFT if is_input else self._cause(series, series.drift_since[name])
            series.restart_drift(name, e.time_unix_nano)
            alerts.append(self._alert(series, e, cause, f"psi:{name}", "reference window", "last window",
                                      n_baseline=self._config.drift_window, n_current=self._config.drift_window,
                                      details={"psi": detector.value, "limit": detector.limit},
                                      summary=f"{name} distribution moved: PSI {detector.value:.3f} > "
                                              f"{detector.limit:.3f} (no-change limit for two windows of "
                                              f"{self._config.drift_window})"))
        return alerts

    def _alert(self, series: Series, e: Evaluation, cause: str, detector: str, baseline: str, current: str, *,
               summary: str, effect: float | None = None, ci: tuple[float, float] | None = None,
               p_value: float | None = None, n_baseline: int = 0, n_current: int = 0,
               details: dict[str, Any] | None = None) -> Alert | None:
        last = series.last_alert.get(cause)
        if last is not None and e.time_unix_nano - last < self._config.cooldown * 1e9:
            return None
        series.last_alert[cause] = e.time_unix_nano
        identity = f"{series.key}|{cause}|{detector}|{e.time_unix_nano}|{e.span_id}"
        return Alert(hashlib.sha256(identity.encode()).hexdigest()[:32], e.time_unix_nano, series.key, cause,
                     detector, summary, baseline, current, effect, ci[0] if ci else None, ci[1] if ci else None,
                     p_value, n_baseline, n_current, series.examples(), details or {})


def _plain(comparison: Comparison) -> dict[str, Any]:
    return {**dataclasses.asdict(comparison), "regressed": comparison.regressed}
