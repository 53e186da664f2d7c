"""The monitor on scripted evaluation streams: each kind of change raises an alert with its cause, steady traffic
raises none, and a restored monitor carries on exactly where the first one was."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from tracejudge.stats.config import StatsConfig
from tracejudge.stats.monitor import QualityMonitor
from tracejudge.stats.records import INPUT_DRIFT, MODEL_CHANGE, PROMPT_CHANGE, Evaluation

SECOND = 1_000_000_000


def stream(n: int, *, start: int = 0, good: float = 0.9, prompt: str = "v1", fingerprint: str = "fp_a",
           words: int = 12, seed: int = 0, latency_s: float = 1.0) -> list[Evaluation]:
    """Scores from a steady mix: a share `good` of 0.9s and the rest 0.2s, seeded."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        score = 0.9 if rng.random() < good else 0.2
        out.append(Evaluation(f"{i:032x}", f"{i:016x}", i * SECOND, "rag", prompt, "gpt-4o", "gpt-4o-2024-08-06",
                              fingerprint, "faithfulness", score, score >= 0.5, 1.0, "uniform", True, "local",
                              "minilm", "1", latency_s * rng.uniform(0.5, 1.5), 300, False,
                              words + rng.randint(-3, 3)))
    return out


def run(evaluations: list[Evaluation], config: StatsConfig | None = None) -> tuple[QualityMonitor, list]:
    monitor = QualityMonitor(config or StatsConfig(cooldown=0))
    return monitor, monitor.observe(evaluations)


def test_steady_traffic_raises_no_alert() -> None:
    _, alerts = run(stream(1500))
    assert alerts == []


def test_a_silent_fingerprint_change_is_a_model_change() -> None:
    monitor, alerts = run(stream(300) + stream(200, start=300, good=0.6, fingerprint="fp_b", seed=1))
    assert alerts and {a.cause for a in alerts} == {MODEL_CHANGE}
    first = alerts[0]
    assert first.detector == "cusum" and first.current == "gpt-4o-2024-08-06|fp_b"
    assert first.baseline == "gpt-4o-2024-08-06|fp_a" and first.effect is not None and first.effect < -0.1
    assert first.examples and all(int(span, 16) >= 300 for _, span in first.examples)  # from after the change
    welch = [a for a in alerts if a.detector == "welch"]
    assert welch and welch[0].p_value is not None and welch[0].p_value < 0.05 and welch[0].ci_high is not None
    assert welch[0].ci_high < 0 and welch[0].n_baseline == 300
    status = monitor.series[first.series].status()
    assert status["variant"] == "gpt-4o-2024-08-06|fp_b" and status["n"] == 500


def test_a_provider_rotating_among_known_fingerprints_is_not_a_model_change() -> None:
    rotating = [dataclasses.replace(e, fingerprint=("fp_a", "fp_b", "fp_c")[i % 3])
                for i, e in enumerate(stream(1500, seed=5))]
    monitor, alerts = run(rotating)
    assert alerts == []
    status = monitor.series[rotating[0].key].status()
    assert status["previous_variant"] == "gpt-4o-2024-08-06|fp_b" and status["variant"] == "gpt-4o-2024-08-06|fp_c"
    # the three turned up within the first three calls, then only alternated
    assert monitor.series[rotating[0].key].variant_changed_unix_nano == 2 * SECOND


def test_a_worse_prompt_version_is_a_prompt_change() -> None:
    _, alerts = run(stream(300) + stream(200, start=300, good=0.6, prompt="v2", seed=1))
    assert alerts and {a.cause for a in alerts} == {PROMPT_CHANGE}
    assert {a.detector for a in alerts} >= {"cusum", "welch"}
    assert all(a.series.prompt_version == "v2" and a.baseline.startswith("rag/v1/") for a in alerts)


def test_a_canary_that_runs_beside_its_baseline_is_tested_sequentially() -> None:
    old, new = stream(2000, seed=3), stream(2000, start=5000, prompt="v2", good=0.8, seed=4, latency_s=3.0)
    warm = old[:200]
    mixed = [e for pair in zip(old[200:], new, strict=False) for e in pair]
    monitor, alerts = run(warm + mixed)
    detectors = {a.detector for a in alerts}
    assert "guardrail:latency_p95" in detectors and "msprt" in detectors
    canary = monitor.series[new[0].key].status()["comparisons"]["canary"]
    assert canary["verdict"].startswith("regressed: ") and "latency_p95" in canary["verdict"]


def test_longer_queries_are_input_drift() -> None:
    _, alerts = run(stream(400) + stream(200, start=400, words=60, seed=2))
    assert [a.cause for a in alerts] == [INPUT_DRIFT]
    assert alerts[0].detector == "psi:query_words"


def test_the_cooldown_keeps_one_alert_per_cause() -> None:
    evaluations = stream(300) + stream(300, start=300, good=0.6, fingerprint="fp_b", seed=1)
    _, many = run(evaluations, StatsConfig(cooldown=0))
    _, few = run(evaluations, StatsConfig(cooldown=3600))
    assert len(many) > 1 and len(few) == 1


@pytest.mark.parametrize("change", ["fingerprint", "judge_version"])
def test_a_restored_monitor_continues_exactly(change: str) -> None:
    """Across a silent model change, and across a switch of judge version."""
    after = stream(300, start=300, good=0.6, seed=1)
    after = [dataclasses.replace(e, **{change: "fp_b" if change == "fingerprint" else "2"}) for e in after]
    evaluations = stream(300) + after
    whole, expected = run(evaluations)
    first = QualityMonitor(StatsConfig(cooldown=0))
    alerts = first.observe(evaluations[:350])
    states = json.loads(json.dumps({str(k): s.state() for k, s in first.series.items()}))
    second = QualityMonitor(StatsConfig(cooldown=0), {k: states[str(k)] for k in first.series})
    alerts += second.observe(evaluations[350:])
    assert [a.to_json() for a in alerts] == [a.to_json() for a in expected]
    # as JSON: a drift detector between windows holds NaN, which no dict comparison finds equal to itself
    assert ({str(k): json.dumps(s.state()) for k, s in second.series.items()}
            == {str(k): json.dumps(s.state()) for k, s in whole.series.items()})


def test_weighted_estimates_use_the_inclusion_probabilities() -> None:
    low = [dataclasses.replace(e, probability=1.0, stratum="failed_checks", in_uniform=False, score=0.1,
                               passed=False) for e in stream(50, start=10_000)]
    high = [dataclasses.replace(e, probability=0.1) for e in stream(100, good=1.0)]
    monitor, _ = run(high + low)
    status = monitor.series[high[0].key].status()
    # 100 items standing for 1,000 at 0.9 plus 50 at 0.1: (900 + 5) / 1050
    assert abs(status["mean_score (weighted, all judged)"] - 905 / 1050) < 1e-3
    assert status["mean_score (uniform stratum)"] == 0.9 and status["n_uniform"] == 100


def test_spans_judged_because_of_complaints_leave_the_estimates_alone() -> None:
    steady = stream(300)
    complained = [dataclasses.replace(e, score=0.0, passed=False, in_uniform=False, stratum="feedback:thumbs_down",
                                      probability=1.0, fingerprint="fp_z")
                  for e in stream(200, start=300, seed=4)]
    alone, _ = run(steady)
    both, alerts = run(steady + complained)
    (series,) = both.series.values()
    assert series.status() == next(iter(alone.series.values())).status() and alerts == []


def judged_by(evaluations: list[Evaluation], version: str) -> list[Evaluation]:
    return [dataclasses.replace(e, judge_version=version) for e in evaluations]


def test_a_new_judge_version_restarts_the_series_without_an_alert() -> None:
    # an adapted judge that scores the same traffic lower: the application did not change
    before, after = stream(300), stream(300, start=300, good=0.6, seed=1)
    _, unchanged_judge = run(before + after)
    assert unchanged_judge  # the same drop under one judge is an alert: what keeps the versions apart matters
    monitor, alerts = run(before + judged_by(after, "1+a-0123456789"))
    assert alerts == []
    series = monitor.series[before[0].key]
    status = series.status()
    assert status["judge_version"] == "1+a-0123456789" and status["n"] == 300
    assert status["judge_changes"] == [{"at_unix_nano": 300 * SECOND, "from": "1", "to": "1+a-0123456789"}]
    assert status["cusum_reference"] == "warm-up" and series.cusum_since_unix_nano == 300 * SECOND


def test_stragglers_of_the_previous_judge_are_left_out_during_a_rolling_switch() -> None:
    new = judged_by(stream(300, start=300, good=0.6, seed=1), "2")
    old = stream(100, start=300, good=0.9, seed=2)  # a process not restarted yet, interleaved for 100 s
    mixed = [e for pair in zip(new[:100], old, strict=True) for e in pair] + new[100:]
    monitor, alerts = run(stream(300) + mixed)
    assert alerts == []
    status = monitor.series[new[0].key].status()
    assert status["n"] == 300 and status["left_out (superseded judge version)"] == 100
    # long after the switch the earlier judge is back (a rollback): that is a switch too
    back = stream(50, start=1500, seed=3)
    monitor.observe(back)
    assert monitor.series[new[0].key].judge_version == "1" and len(monitor.series[new[0].key].judge_changes) == 2


def test_a_prompt_version_is_compared_only_with_a_baseline_scored_by_the_same_judge() -> None:
    _, alerts = run(stream(300) + judged_by(stream(300, start=300, good=0.6, prompt="v2", seed=1), "2"))
    assert alerts == []  # v1's scores are another judge's: no prompt_change from them
    # both versions switch judge, then both are scored by the new one: the comparison resumes
    v1, v2 = stream(600, seed=3), stream(600, start=600, good=0.6, prompt="v2", seed=4)
    switched = judged_by([e for pair in zip(v1[300:], v2[:300], strict=True) for e in pair] + v2[300:], "2")
    monitor, after_switch = run(v1[:300] + v2[:50] + switched)
    assert monitor.series[v2[0].key].baseline == str(v1[0].key)
    compared = [a for a in after_switch if a.detector in ("welch", "two_proportions")]
    assert compared and {a.cause for a in after_switch} == {PROMPT_CHANGE}
    assert all(a.n_baseline <= 300 for a in compared)  # v1's scores by the new judge only
    _, same_judge = run(judged_by(stream(300), "2") + judged_by(stream(300, start=300, good=0.6, prompt="v2",
                                                                         seed=1), "2"))
    assert {a.cause for a in same_judge} == {PROMPT_CHANGE}
