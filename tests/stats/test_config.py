"""The statistics' settings from YAML: defaults, and every problem named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processor.processors.judge_queue.test_stage import judging_config
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.processors.judge_queue.config import JudgeQueueStageConfig
from tracejudge.processor.service.config import parse_config
from tracejudge.stats.config import StatsConfig


def stage(stats_yaml: str) -> JudgeQueueStageConfig:
    metrics = "    metrics: [faithfulness, relevancy]\n"
    text = judging_config("127.0.0.1:1", "http://127.0.0.1:1/v1", Path("/tmp/unused")).replace(
        metrics, metrics + stats_yaml)
    settings = parse_config(text, {}).processors["judge_queue"]
    assert isinstance(settings, JudgeQueueStageConfig)
    return settings


def test_statistics_are_on_with_the_documented_defaults() -> None:
    assert stage("").stats == StatsConfig()
    tuned = stage("    stats: {cusum_h: 4, min_n: 50, cooldown: 10m, webhook: {url: 'http://127.0.0.1:9/x'}}\n").stats
    assert (tuned.cusum_h, tuned.min_n, tuned.cooldown, tuned.webhook.url) == (4, 50, 600.0, "http://127.0.0.1:9/x")


def test_every_bad_setting_is_named_by_its_key() -> None:
    with pytest.raises(ConfigError) as raised:
        stage("    stats: {cusum_h: 0, alpha: 2, min_n: 1, drift_window: 5}\n")
    problems = "\n".join(raised.value.problems)
    for key in ("processors.judge_queue.stats.cusum_k / cusum_h", "processors.judge_queue.stats.alpha",
                "processors.judge_queue.stats.min_n", "processors.judge_queue.stats.drift_window"):
        assert key in problems
    with pytest.raises(ConfigError, match=r"processors\.judge_queue\.stats\.webhook\.url: must be an http"):
        stage("    stats: {webhook: {url: 'ftp://x'}}\n")
    with pytest.raises(ConfigError, match=r"processors\.judge_queue\.stats\.cusum_hh"):
        stage("    stats: {cusum_hh: 4}\n")


def test_a_trace_link_template_must_hold_the_trace_id_and_nothing_unknown() -> None:
    with pytest.raises(ConfigError, match=r"stats\.trace_links\.jaeger: an http\(s\) URL template holding"):
        stage("    stats: {trace_links: {jaeger: 'http://jaeger:16686/search'}}\n")
    with pytest.raises(ConfigError, match=r"stats\.trace_links\.tempo: only \{trace_id\}"):
        stage("    stats: {trace_links: {tempo: 'http://grafana/explore?t={trace_id}&o={org}'}}\n")
    stage("    stats: {trace_links: {phoenix: 'http://phoenix:6006/projects/{project}/traces/{trace_id}'}}\n")
