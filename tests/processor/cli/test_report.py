"""`tracejudge report` on stores written by the real statistics: a seeded stream of evaluations (two prompt versions,
a silent fingerprint change that lowers the scores, uniform and targeted strata, two judge tiers) recorded through
`QualityTracker`, and spend added through the judge queue's ledger. The numbers printed are checked against the
fixture, and the --html page against its files."""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tracejudge.judge.limits import utc_day
from tracejudge.judge.queue import JudgeQueue, JudgeQueueConfig
from tracejudge.processor import cli
from tracejudge.processor.cli.report import read_stage
from tracejudge.processor.processors.judge_queue.stores import stats_stores
from tracejudge.processor.service.config import load_config
from tracejudge.stats.monitor import QualityMonitor
from tracejudge.stats.records import MODEL_CHANGE, Alert, Evaluation, SeriesKey
from tracejudge.stats.store import StatsStore
from tracejudge.stats.tracker import QualityTracker

STEP_S = 300  # between evaluations
COUNT, FINGERPRINT_CHANGE, SECOND_VERSION = 600, 220, 360  # evaluation indices, oldest first
HEAVY_USD = 0.0025  # spend per heavy-tier evaluation
SINCE_HOURS = 24
V1 = SeriesKey("rag-app", "v1", "gpt-4o", "faithfulness")
V2 = SeriesKey("rag-app", "v2", "gpt-4o", "faithfulness")
RESPONSE_MODEL = "gpt-4o-2024-08-06"


def config_text(data: Path, stats: str = "{warmup: 60, min_n: 30, cusum_block: 5}") -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  llm_extract:
  judge_queue:
    storage: file_storage
    judges:
      local: {{judge: embedded}}
    stats: {stats}
exporters:
  debug:
extensions:
  file_storage:
    directory: "{data}"
service:
  extensions: [file_storage]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [llm_extract, judge_queue]
      exporters: [debug]
"""


def synthetic(now_s: float) -> list[Evaluation]:
    """Oldest first, one every STEP_S seconds, the newest STEP_S/2 before `now_s`: a --since boundary computed up to
    STEP_S/2 later falls between the same two evaluations. v1 scores 0.9 nine times in ten until its fingerprint
    changes from fp_a to fp_b, then half the time; v2 (from SECOND_VERSION on, fp_b) scores 0.9 in 85%."""
    rng = random.Random(7)
    out = []
    for i in range(COUNT):
        version = "v1" if i < SECOND_VERSION else "v2"
        fingerprint = "fp_a" if i < FINGERPRINT_CHANGE else "fp_b"
        good = 0.9 if i < FINGERPRINT_CHANGE else 0.5 if version == "v1" else 0.85
        uniform = rng.random() < 0.75
        score = 0.9 if rng.random() < good else 0.2
        tier = "heavy" if rng.random() < 0.2 else "local"
        time_unix_nano = int((now_s - (COUNT - 1 - i) * STEP_S - STEP_S / 2) * 1e9)
        out.append(Evaluation(f"{i:032x}", f"{i:016x}", time_unix_nano, "rag-app", version, "gpt-4o", RESPONSE_MODEL,
                              fingerprint, "faithfulness", score, score >= 0.5, 0.5 if uniform else 1.0,
                              "uniform" if uniform else "rule:long_answer", uniform, tier, "judge-model", "1", 1.0,
                              300, False, 12 + rng.randint(-3, 3)))
    return out


@dataclass(frozen=True)
class Stored:
    config: Path
    now_s: float
    evaluations: list[Evaluation]
    alerts: list[Alert]
    spend: dict[tuple[str, str], float]  # (day, tier) -> USD


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Stored:
    directory = tmp_path_factory.mktemp("report")
    config_file = directory / "otel-config.yaml"
    config_file.write_text(config_text(directory / "data"))
    config = load_config(str(config_file))
    ((_, stores, settings),) = stats_stores(config)
    now_s = time.time()
    evaluations = synthetic(now_s)
    tracker = QualityTracker(StatsStore(stores.stats()), settings, checkpoint_every=200)
    alerts = []
    for start in range(0, COUNT, 50):
        alerts += tracker.record(evaluations[start:start + 50])
    tracker.close()
    queue = JudgeQueue(stores.queue(), JudgeQueueConfig(), "1")
    spend: dict[tuple[str, str], float] = {}
    try:
        for e in evaluations:
            day = utc_day(e.time_unix_nano / 1e9)
            usd = HEAVY_USD if e.tier == "heavy" else 0.0
            queue.add_spend(e.tier, day, usd)
            spend[day, e.tier] = spend.get((day, e.tier), 0.0) + usd
    finally:
        queue.close()
    return Stored(config_file, now_s, evaluations, alerts, spend)


def table(out: str, title: str) -> list[dict[str, str]]:
    """The rows of a printed table, as header -> cell, read by the columns the dashes mark; a line that leaves a
    cell empty continues the row above it (a long cell wrapped to fit 120 columns), and is joined to it."""
    lines = out.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert max(map(len, lines)) <= 120
    dashes = next(i for i, line in enumerate(lines) if set(line) == {"-", " "})  # a long header wraps too
    spans = [match.span() for match in re.finditer(r"-+", lines[dashes])]

    def cells_of(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans[:-1]] + [line[spans[-1][0]:].strip()]

    widths = [b - a for a, b in spans]

    def join(line_cells: list[list[str]]) -> list[str]:
        out = []
        for column, width in enumerate(widths):
            text, last = "", ""
            for part in (cells[column] for cells in line_cells):
                if part:
                    text += part if not text or len(last) >= width else f" {part}"
                    last = part
            out.append(text)
        return out

    header = join([cells_of(line) for line in lines[:dashes]])
    groups: list[list[list[str]]] = []
    for line in lines[dashes + 1:]:
        cells = cells_of(line)
        if groups and not all(cells):
            groups[-1].append(cells)
        else:
            groups.append([cells])
    return [dict(zip(header, join(group), strict=True)) for group in groups]


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(["report", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def weighted(values: list[float], probabilities: list[float]) -> tuple[float, float, float]:
    """The Hájek mean and its 95% CI (with-replacement variance), the oracle for WeightedMean."""
    x, w = np.array(values), 1 / np.array(probabilities)
    mean = float(np.sum(w * x) / np.sum(w))
    half = 1.959963984540054 * math.sqrt(len(x) / (len(x) - 1) * np.sum(w**2 * (x - mean) ** 2) / np.sum(w) ** 2)
    return mean, mean - half, mean + half


def expected_row(evaluations: list[Evaluation], key: SeriesKey) -> dict[str, str]:
    mine = [e for e in evaluations if e.key == key]
    mean, low, high = weighted([e.score for e in mine], [e.probability for e in mine])
    passed, _, _ = weighted([float(e.passed) for e in mine], [e.probability for e in mine])
    uniform = [e.score for e in mine if e.in_uniform]
    variants = list(dict.fromkeys(e.variant for e in mine))
    return {"series": str(key), "n": str(len(mine)), "mean (weighted)": f"{mean:.3f}", "95% CI": f"[{low:.3f}, "
            f"{high:.3f}]", "uniform mean": f"{sum(uniform) / len(uniform):.3f}", "n uniform": str(len(uniform)),
            "pass rate": f"{passed:.3f}", "variants (response model|fingerprint)": ", ".join(variants)}


def test_the_fixture_raises_real_model_change_alerts_on_v1_only(stored: Stored) -> None:
    assert stored.alerts and {(a.series, a.cause) for a in stored.alerts} == {(V1, MODEL_CHANGE)}
    assert "cusum" in {a.detector for a in stored.alerts}


def test_report_prints_each_series_tier_mix_and_spend_from_the_stores(stored: Stored,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = report(capsys, "--config", str(stored.config))
    assert status == 0
    rows = {row["series"]: row for row in table(out, "Series")}
    assert set(rows) == {str(V1), str(V2)}
    ((_, _, settings),) = stats_stores(load_config(str(stored.config)))
    monitor = QualityMonitor(settings)
    monitor.observe(stored.evaluations)
    for key in (V1, V2):
        row = rows[str(key)]
        assert {name: row[name] for name in expected_row(stored.evaluations, key)} == expected_row(
            stored.evaluations, key)
        assert row["CUSUM / h"] == f"{monitor.series[key].cusum.get():.2f} / 5"
        own = [a for a in stored.alerts if a.series == key]
        assert row["alerts"] == str(len(own))
        assert row["last alert"] == (f"{own[-1].cause} ({own[-1].detector})" if own else "-")
    assert rows[str(V1)]["n"] == str(SECOND_VERSION) and rows[str(V2)]["n"] == str(COUNT - SECOND_VERSION)

    listed = table(out, "Alerts")
    assert [(r["series"], r["cause"], r["detector"]) for r in listed] == [
        (str(a.series), a.cause, a.detector) for a in stored.alerts]

    (calibration,) = table(out, "Judge calibration (all stored feedback)")  # no feedback in this store
    assert calibration["metric"] == "faithfulness" and calibration["AUROC for complaints"] == "-"
    assert calibration["warning"].startswith("too little feedback")

    tiers = Counter(e.tier for e in stored.evaluations)
    assert {r["tier"]: (r["evaluations"], r["share"]) for r in table(out, "Judge tiers")} == {
        **{tier: (str(n), f"{100 * n / COUNT:.1f}%") for tier, n in tiers.items()}, "total": (str(COUNT), "100.0%")}

    spend = {r["day"]: r for r in table(out, "Judge spend (USD, per UTC day)")}
    days = sorted({day for day, _ in stored.spend})
    assert list(spend) == [*days, "total"]
    for day in days:
        assert spend[day]["heavy"] == f"{stored.spend[day, 'heavy']:.4f}"
        assert spend[day]["total"] == f"{stored.spend[day, 'heavy'] + stored.spend[day, 'local']:.4f}"
    assert spend["total"]["total"] == f"{HEAVY_USD * tiers['heavy']:.4f}" != "0.0000"


def test_since_reports_only_the_last_hours(stored: Stored, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = report(capsys, "--config", str(stored.config), "--since", str(SINCE_HOURS))
    assert status == 0
    cutoff = int((stored.now_s - SINCE_HOURS * 3600) * 1e9)
    recent = [e for e in stored.evaluations if e.time_unix_nano >= cutoff]
    assert 0 < len([e for e in recent if e.key == V1]) < SECOND_VERSION  # the window cuts v1
    rows = {row["series"]: row for row in table(out, "Series")}
    for key in (V1, V2):
        expected = expected_row(recent, key)
        assert {name: rows[str(key)][name] for name in expected} == expected
        assert rows[str(key)]["alerts"] == str(len([a for a in stored.alerts
                                                    if a.series == key and a.time_unix_nano >= cutoff]))
    assert table(out, "Judge tiers")[-1] == {"tier": "total", "evaluations": str(len(recent)), "share": "100.0%"}
    days = [r["day"] for r in table(out, "Judge spend (USD, per UTC day)")]
    assert days[:-1] == sorted({day for day, _ in stored.spend if day >= utc_day(cutoff / 1e9)})


def test_the_cusum_chart_is_the_monitors_with_its_alarms_beyond_h(stored: Stored) -> None:
    config = load_config(str(stored.config))
    ((stage, stores, settings),) = stats_stores(config)
    charts = read_stage(stage, stores, settings, 0, charts=True).charts
    assert charts is not None and charts.limit == settings.cusum_h
    (trace,) = [t for t in charts.series if t.key == V1]
    downs = [t for t, direction in trace.alarms if direction == "down"]
    cusum_alerts = [a.time_unix_nano for a in stored.alerts if a.detector == "cusum"]
    assert cusum_alerts and set(cusum_alerts) <= set(downs)
    at_alarm = {t: low for t, _, low in trace.cusum}
    assert all(at_alarm[t] > settings.cusum_h for t in downs)  # the value that crossed, before the restart
    assert sum(map(len, trace.blocks.values())) == sum(  # blocks of cusum_block uniform scores per variant
        n // settings.cusum_block for n in Counter(e.variant for e in stored.evaluations
                                                   if e.key == V1 and e.in_uniform).values())


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.tags: Counter[str] = Counter()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_writes_a_self_contained_page_with_valid_png_charts(stored: Stored, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "site" / "report"
    status, out, _ = report(capsys, "--config", str(stored.config), "--html", str(directory))
    assert status == 0
    page_path = directory / "index.html"
    assert out.splitlines()[-1] == str(page_path)
    page = Page()
    page.feed(page_path.read_text(encoding="utf-8"))
    page.close()
    assert page.tags["table"] == 5 and page.tags["script"] == page.tags["link"] == 0
    text = " ".join(page.text)
    assert str(V1) in text and str(V2) in text and MODEL_CHANGE in text
    sources = [str(image["src"]) for image in page.images]
    assert any("cusum" in src for src in sources) and any("scores" in src for src in sources)
    assert any("tiers" in src for src in sources)
    for image in page.images:
        assert image["alt"] and "/" not in str(image["src"]) and ":" not in str(image["src"])
        path = directory / str(image["src"])
        with Image.open(path) as png:
            png.verify()
            assert png.format == "PNG"
        with Image.open(path) as png:
            assert png.size[0] >= 800 and png.size[1] >= 400
        assert path.stat().st_size > 10_000
    assert sorted(p.name for p in directory.glob("*.png")) == sorted(sources)


def test_nothing_stored_yet_is_said_and_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "otel-config.yaml"
    config_file.write_text(config_text(tmp_path / "data"))
    status, out, _ = report(capsys, "--config", str(config_file))
    assert status == 0 and "nothing judged yet" in out
    StatsStore(tmp_path / "data" / "judge_queue.stats.db").close()  # a store with no evaluations
    status, out, _ = report(capsys, "--config", str(config_file), "--html", str(tmp_path / "out"))
    assert status == 0 and "nothing judged yet" in out and not (tmp_path / "out" / "index.html").exists()


def test_a_config_without_statistics_is_said_and_not_an_error(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "otel-config.yaml"
    config_file.write_text(config_text(tmp_path / "data", stats="{enabled: false}"))
    status, out, _ = report(capsys, "--config", str(config_file))
    assert status == 0 and "no judge stage with statistics" in out


def test_an_unwritable_html_directory_fails_with_a_message(stored: Stored, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, out, err = report(capsys, "--config", str(stored.config), "--html", str(blocker / "report"))
    assert status == 1 and str(blocker) in err and "--html" in err and out == ""
