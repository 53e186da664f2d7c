"""What the CLI prints says each thing once, and rightly: alerts, canaries, scores, replayed alerts."""

from __future__ import annotations

from tracejudge.processor.cli.alerts import alert_text
from tracejudge.processor.cli.explain import score_text
from tracejudge.processor.cli.replay import same_alerts
from tracejudge.processor.cli.report import Table
from tracejudge.processor.cli.series import _comparison
from tracejudge.stats.records import Alert, SeriesKey


def test_an_alert_whose_summary_gives_its_ci_prints_it_once() -> None:
    alert = Alert("a1", 1, SeriesKey("bot", "v2", "gpt-4o-mini", "faithfulness"), "prompt_change", "welch",
                  "mean score 0.535 -> 0.226 (-0.309, 95% CI -0.4..-0.2, p=0.001)", "v1", "v2", -0.309, -0.4, -0.2,
                  examples=(("ab" * 16, "cd" * 8),))
    text = alert_text(alert)
    assert text.count("CI") == 1
    assert text.endswith(f"example: trace {'ab' * 16} span {'cd' * 8}")
    bare = Alert("a2", 1, alert.series, "unexplained", "cusum", "mean score dropped", "", "", ci_low=-0.1, ci_high=0.1)
    assert alert_text(bare) == ("[unexplained] bot/v2/gpt-4o-mini/faithfulness via cusum: mean score dropped, 95% CI "
                                "-0.100..+0.100")


def test_a_canary_comparison_says_its_verdict_once_with_its_tests() -> None:
    text = _comparison({"verdict": "undecided", "score": {"difference": 0.012, "p_value": 0.31, "n": [40, 38]}})
    assert text == "undecided; score +0.012 (p=0.31, n 40 vs 38)"


def test_a_score_is_never_rounded_across_the_pass_mark() -> None:
    assert [score_text(s) for s in (0.9, 0.4999, 0.96317, 0.5)] == ["0.90", "0.4999", "0.96", "0.50"]


def test_alerts_of_one_moment_match_in_any_order() -> None:
    assert same_alerts(['{"id": "b"}', '{"id": "a"}'], ['{"id": "a"}', '{"id": "b"}'])
    assert not same_alerts(['{"id": "a"}'], ['{"id": "a"}', '{"id": "b"}'])


def test_a_report_table_fits_in_120_columns_wrapping_long_cells() -> None:
    series = "support-bot/prompt-2026-11-30-a/gpt-4o-mini-2024-07-18/faithfulness"
    table = Table("quality by series", ("series", "mean (95% CI)", "n", "last alert"),
                  ((series, "0.812 [0.790, 0.834] weighted", "1234", "model_change: " + "x" * 90),), "<<><")
    lines = table.text().splitlines()
    assert max(map(len, lines)) <= 120
    assert "".join(line.split("  ")[0].strip() for line in lines[3:]) == series  # wrapped, nothing lost
