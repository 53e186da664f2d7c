"""`tracejudge report`: per series quality, the judge's calibration, the tiers' mix and the judge spend of each judge
stage, read from its stores (judge_queue.stats.db and judge_queue.db); printed as text tables and, with --html,
written as a page with its PNG charts beside it (`report_plots`)."""

from __future__ import annotations

import argparse
import html
import math
import sys
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tqdm import tqdm

from tracejudge.judge.limits import utc_day
from tracejudge.judge.queue import JudgeQueueReader
from tracejudge.processor.cli.config_option import add_config_option
from tracejudge.processor.component.errors import StoreMissing
from tracejudge.processor.processors.judge_queue.stores import StageStores, stats_stores
from tracejudge.processor.service.config import config_or_report
from tracejudge.stats.calibration import Calibration, calibrate
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.monitor import QualityMonitor
from tracejudge.stats.records import Alert, Evaluation, SeriesKey
from tracejudge.stats.replay import recover
from tracejudge.stats.series import Series
from tracejudge.stats.store import StatsStore

if TYPE_CHECKING:  # matplotlib loads only for --html
    from tracejudge.processor.cli.report.plots import Image, StageCharts

ALERTS_LISTED = 20  # the newest alerts of a stage, in the alerts table
_SPEND = "Judge spend (USD, per UTC day)"


def add_arguments(command: argparse.ArgumentParser) -> None:
    add_config_option(command)
    command.add_argument("--html", metavar="DIR", help="also write DIR/index.html and its PNG charts")
    command.add_argument("--since", type=_hours, metavar="HOURS", help="only evaluations of the last HOURS hours")


def _hours(text: str) -> float:
    hours = float(text)
    if not hours > 0 or math.isinf(hours):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of hours")
    return hours


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str  # per column: "<" text, ">" numbers

    def text(self, max_width: int = 120) -> str:
        """Columns as wide as their cells, but the table at most `max_width` wide: the widest columns are narrowed
        and their long cells wrapped onto following lines."""
        widths = [max(map(len, column)) for column in zip(self.header, *self.rows, strict=True)]
        while sum(widths) + 2 * (len(widths) - 1) > max_width and max(widths) > MIN_COLUMN:
            widths[widths.index(max(widths))] -= 1
        lines = [*_wrapped(self.header, "<" * len(widths), widths), ["-" * w for w in widths]]
        for row in self.rows:
            lines += _wrapped(row, self.align, widths)
        return "\n".join([self.title, *("  ".join(line).rstrip() for line in lines)])

    def html(self) -> str:
        def row(cells: Sequence[str], tag: str) -> str:
            return "<tr>" + "".join(f'<{tag} class="{"num" if a == ">" else "txt"}">{html.escape(c)}</{tag}>'
                                    for c, a in zip(cells, self.align, strict=True)) + "</tr>"

        body = "\n".join(row(r, "td") for r in self.rows)
        return (f"<table><caption>{html.escape(self.title)}</caption>\n<thead>{row(self.header, 'th')}</thead>\n"
                f"<tbody>\n{body}\n</tbody></table>")


MIN_COLUMN = 10  # a text report's columns are narrowed to no less than this, to fit its width


def _wrapped(cells: Sequence[str], align: str, widths: Sequence[int]) -> list[list[str]]:
    """One row as lines: each cell wrapped to its column's width, aligned."""
    parts = [textwrap.wrap(cell, width, break_on_hyphens=False) or [""]
             for cell, width in zip(cells, widths, strict=True)]
    return [[f"{(part[i] if i < len(part) else ''):{a}{w}}" for part, a, w in zip(parts, align, widths, strict=True)]
            for i in range(max(map(len, parts)))]


@dataclass(frozen=True)
class StageReport:
    stage: str
    stored: int  # evaluations in the store
    judged: int  # of them, in the window
    tables: tuple[Table, ...]
    charts: StageCharts | None  # with --html


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config)
    if config is None:
        return 2
    stores = list(stats_stores(config))
    if not stores:
        print(f"{args.config}: no judge stage with statistics (processors.judge_queue with stats enabled): nothing "
              "to report")
        return 0
    directory = Path(args.html) if args.html else None
    try:
        if directory is not None:  # before the long read, so a typo costs nothing
            directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return _unwritable(e)
    since = time.time_ns() - int(args.since * 3600e9) if args.since else 0
    try:
        reports = [report for name, stage_stores, settings in stores
                   if (report := read_stage(name, stage_stores, settings, since, directory is not None)) is not None]
    except OSError as e:
        print(f"tracejudge report: {e}", file=sys.stderr)
        return 1
    if not any(r.judged for r in reports):
        stored = sum(r.stored for r in reports)
        print(f"no evaluations in the last {args.since:g} hours ({stored} stored, all older)" if stored else
              "nothing judged yet: no evaluations are stored (see `tracejudge explain` for what happened to a trace)")
        return 0
    reports = [r for r in reports if r.judged]
    print_text(reports, sys.stdout)
    if directory is not None:
        try:
            print(write_html(reports, directory, args.since))
        except OSError as e:
            return _unwritable(e)
    return 0


def _unwritable(error: OSError) -> int:
    print(f"tracejudge report: cannot write the report: {error}; choose a writable directory with --html",
          file=sys.stderr)
    return 1


def read_stage(stage: str, stores: StageStores, settings: StatsConfig, since_unix_nano: int,
               charts: bool) -> StageReport | None:
    """One pass over the stage's stored evaluations (a progress bar on a terminal), and its alerts and spend; None
    when nothing was ever stored."""
    try:
        store = StatsStore(stores.stats(read_only=True))
    except StoreMissing:
        return None
    try:
        stored = store.count("evaluations")
        monitor, _ = recover(store, settings)  # the current state, as `tracejudge series` shows it
        alerts = [a for a in store.alerts() if a.time_unix_nano >= since_unix_nano]
        calibration = _calibration_table(calibrate(store))
        reading = _Reading(settings, since_unix_nano, charts)
        with tqdm(total=stored, desc=f"{stage}: evaluations", unit="eval", disable=None, file=sys.stderr) as bar:
            for batch in store.evaluations():
                for e in batch:
                    reading.add(e)
                bar.update(len(batch))
    finally:
        store.close()
    spend = read_spend(stores, utc_day(since_unix_nano / 1e9) if since_unix_nano else "")
    tables = (_series_table(reading.series, monitor, alerts), _alerts_table(alerts), calibration,
              _tier_table(reading.tiers), _spend_table(spend))
    return StageReport(stage, stored, sum(reading.tiers.values()), tables,
                       reading.charts(stage, alerts, spend) if charts else None)


def read_spend(stores: StageStores, since_day: str) -> dict[str, dict[str, float]]:
    """day -> tier -> USD from the judge queue's spend ledger (none when it does not exist yet)."""
    try:
        reader = JudgeQueueReader(stores.queue(read_only=True))
    except StoreMissing:
        return {}
    try:
        return reader.spend(since_day)
    finally:
        reader.close()


class _Reading:
    """What the pass over the evaluations gathers for the window: each series' estimates (the statistics' own
    `Series`, so the numbers are those of `tracejudge series`), tier counts and, for the charts, block means and the
    CUSUM as the monitor ran it: a fresh `QualityMonitor` fed one evaluation at a time from the first stored one."""

    def __init__(self, settings: StatsConfig, since_unix_nano: int, charts: bool) -> None:
        self._settings = settings
        self._since = since_unix_nano
        self.series: dict[SeriesKey, Series] = {}
        self.tiers: Counter[str] = Counter()
        self.tiers_by_day: dict[str, Counter[str]] = defaultdict(Counter)
        self._monitor = QualityMonitor(settings) if charts else None
        # (series, variant, uniform stratum only) -> (time, mean) of each block, and the block being filled
        self._blocks: dict[tuple[SeriesKey, str, bool], list[tuple[int, float]]] = defaultdict(list)
        self._filling: dict[tuple[SeriesKey, str, bool], list[float]] = defaultdict(list)
        self._cusum: dict[SeriesKey, list[tuple[int, float, float]]] = defaultdict(list)
        self._alarms: dict[SeriesKey, list[tuple[int, str]]] = defaultdict(list)
        self._last_uniform: dict[SeriesKey, int] = {}

    def add(self, e: Evaluation) -> None:
        if self._monitor is not None:
            self._chart(self._monitor, e)
        if e.time_unix_nano < self._since:
            return
        series = self.series.get(e.key)
        if series is None:
            series = self.series[e.key] = Series(e.key, self._settings)
        series.observe(e)
        self.tiers[e.tier] += 1
        self.tiers_by_day[utc_day(e.time_unix_nano / 1e9)][e.tier] += 1
        if self._monitor is not None:
            for block in [(e.key, e.variant, False)] + [(e.key, e.variant, True)] * e.in_uniform:
                filling = self._filling[block]
                filling.append(e.score)
                if len(filling) == self._settings.cusum_block:
                    self._blocks[block].append((e.time_unix_nano, sum(filling) / len(filling)))
                    filling.clear()

    def _chart(self, monitor: QualityMonitor, e: Evaluation) -> None:
        before = monitor.series.get(e.key)
        chart = before.cusum if before is not None else None  # after an alarm the monitor starts a new chart
        monitor.observe([e])
        if not e.in_uniform or e.time_unix_nano < self._since:
            return
        if chart is None:
            chart = monitor.series[e.key].cusum
        sums = (chart.cusum.upper, chart.cusum.lower) if chart.cusum is not None else (0.0, 0.0)
        trace = self._cusum[e.key]
        if not trace or trace[-1][1:] != sums or chart.alarm:
            trace.append((e.time_unix_nano, *sums))
        if chart.alarm:
            self._alarms[e.key].append((e.time_unix_nano, chart.alarm))
        self._last_uniform[e.key] = e.time_unix_nano

    def charts(self, stage: str, alerts: list[Alert], spend: dict[str, dict[str, float]]) -> StageCharts:
        from tracejudge.processor.cli.report.plots import SeriesTrace, StageCharts

        traces = []
        for key in sorted(self.series):
            uniform = any(k == key and u for k, _, u in self._blocks)
            blocks = {variant: points for (k, variant, u), points in self._blocks.items() if k == key and u == uniform}
            cusum = self._cusum.get(key, [])
            if cusum and cusum[-1][0] != self._last_uniform[key]:  # the last step lasts until the last score
                cusum = [*cusum, (self._last_uniform[key], *cusum[-1][1:])]
            traces.append(SeriesTrace(key, blocks, uniform, cusum, self._alarms.get(key, [])))
        return StageCharts(stage, tuple(traces), tuple(alerts), self._settings.cusum_block, self._settings.cusum_h,
                           {day: dict(tiers) for day, tiers in self.tiers_by_day.items()}, spend)


def _number(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _series_table(window: dict[SeriesKey, Series], monitor: QualityMonitor, alerts: list[Alert]) -> Table:
    rows = []
    for key in sorted(window):
        series = window[key]
        low, high = series.estimate.ci95 if series.estimate.n >= 2 else (math.nan, math.nan)
        current = monitor.series.get(key)
        cusum = f"{current.cusum.get():.2f} / {current.cusum.h:g}" if current is not None else "-"
        own = [a for a in alerts if a.series == key]
        rows.append((str(key), str(series.estimate.n), _number(series.estimate.get()),
                     f"[{_number(low)}, {_number(high)}]", _number(series.uniform.scores.get()),
                     str(series.uniform.n), _number(series.pass_rate.get()), ", ".join(series.known_variants), cusum,
                     str(len(own)), f"{own[-1].cause} ({own[-1].detector})" if own else "-"))
    return Table("Series", ("series", "n", "mean (weighted)", "95% CI", "uniform mean", "n uniform", "pass rate",
                            "variants (response model|fingerprint)", "CUSUM / h", "alerts", "last alert"),
                 tuple(rows), "<>>>>>><>><")


def _alerts_table(alerts: list[Alert]) -> Table:
    newest = alerts[-ALERTS_LISTED:]
    title = f"Alerts (the newest {len(newest)} of {len(alerts)})" if len(newest) < len(alerts) else "Alerts"
    return Table(title, ("time (UTC)", "series", "cause", "detector", "summary"),
                 tuple((_when(a.time_unix_nano), str(a.series), a.cause, a.detector, a.summary) for a in newest),
                 "<<<<<")


def _calibration_table(results: list[Calibration]) -> Table:
    rows = []
    for r in results:
        outcome = r.outcome
        rows.append((r.metric, r.judge_version, _number(outcome.value if outcome else None),
                     f"[{_number(outcome.ci_low)}, {_number(outcome.ci_high)}]" if outcome else "-",
                     f"{r.n_unhappy} / {r.n_control}", r.control, _number(r.agreement), _number(r.kappa),
                     str(r.n_labels), r.warning or "-"))
    return Table("Judge calibration (all stored feedback)", ("metric", "judge version", "AUROC for complaints",
                 "95% CI", "unhappy / control", "control traces", "reviewer agreement", "kappa", "labels", "warning"),
                 tuple(rows), "<<>><<>>><")


def _tier_table(tiers: Counter[str]) -> Table:
    total = sum(tiers.values())
    rows = [(tier, str(n), f"{100 * n / total:.1f}%") for tier, n in sorted(tiers.items())]
    return Table("Judge tiers", ("tier", "evaluations", "share"), (*rows, ("total", str(total), "100.0%")), "<>>")


def _spend_table(spend: dict[str, dict[str, float]]) -> Table:
    if not spend:
        return Table(_SPEND, ("day", "total"), (), "<>")
    tiers = sorted({tier for day in spend.values() for tier in day})
    rows = [(day, *(f"{spend[day].get(t, 0.0):.4f}" for t in tiers), f"{sum(spend[day].values()):.4f}")
            for day in sorted(spend)]
    totals = [sum(day.get(t, 0.0) for day in spend.values()) for t in tiers]
    return Table(_SPEND, ("day", *tiers, "total"),
                 (*rows, ("total", *(f"{x:.4f}" for x in totals), f"{sum(totals):.4f}")), "<" + ">" * (len(tiers) + 1))


def _when(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_text(reports: list[StageReport], out: IO[str]) -> None:
    for report in reports:
        print(f"== judge stage {report.stage}: {report.judged} evaluations reported ({report.stored} stored)\n",
              file=out)
        for table in report.tables:
            print(table.text() if table.rows else f"{table.title}\n(none)", end="\n\n", file=out)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
caption{text-align:left;font-weight:bold;padding:.3em 0}th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}
img{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#555;font-size:.9em}"""


def write_html(reports: list[StageReport], directory: Path, since_hours: float | None) -> Path:
    """DIR/index.html with the tables and the charts (PNG files beside it); returns the page's path."""
    from tracejudge.processor.cli.report.plots import draw

    directory.mkdir(parents=True, exist_ok=True)
    window = f"the last {since_hours:g} hours" if since_hours else "every stored evaluation"
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tracejudge report</title>"
             f"<style>{_CSS}</style></head><body>\n<h1>tracejudge report</h1>\n<p>{html.escape(window)}; written "
             f"{html.escape(_when(time.time_ns()))} UTC</p>"]
    for number, report in enumerate(reports):
        images: list[Image] = draw(report.charts, directory, f"stage{number}-") if report.charts else []
        parts.append(f"<h2>Judge stage {html.escape(report.stage)}: {report.judged} evaluations "
                     f"({report.stored} stored)</h2>")
        parts += [table.html() if table.rows else f"<p><b>{html.escape(table.title)}</b>: none</p>"
                  for table in report.tables]
        parts += [f'<figure><img src="{html.escape(i.file)}" alt="{html.escape(i.alt)}"><figcaption>'
                  f"{html.escape(i.caption)}</figcaption></figure>" for i in images]
    page = directory / "index.html"
    page.write_text("\n".join([*parts, "</body></html>\n"]), encoding="utf-8")
    return page
