"""The charts of `tracejudge report --html`, as PNG files drawn with matplotlib's Agg backend (no display needed):
scores over time by version and variant, the CUSUM against its limits, and the judge tiers' mix and spend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, whatever the environment says

import matplotlib.pyplot as plt
import numpy as np

from tracejudge.stats.records import CAUSES, Alert, SeriesKey

_CAUSE_COLOURS = dict(zip(CAUSES, ("tab:red", "tab:purple", "tab:orange", "black"), strict=True))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LINESTYLES = ("-", "--", ":", "-.")
_DPI = 100


@dataclass(frozen=True)
class SeriesTrace:
    key: SeriesKey
    blocks: Mapping[str, Sequence[tuple[int, float]]]  # variant -> (time of the block's last score, block mean)
    uniform: bool  # blocks of uniform-stratum scores; else of every judged score (the series has no uniform ones)
    cusum: Sequence[tuple[int, float, float]]  # (time, C⁺, C⁻) where the monitor's chart changed, in sd units
    alarms: Sequence[tuple[int, str]]  # (time, "up" | "down") where the chart crossed h and restarted


@dataclass(frozen=True)
class StageCharts:
    stage: str
    series: tuple[SeriesTrace, ...]
    alerts: tuple[Alert, ...]
    block: int  # scores per block mean
    limit: float  # the CUSUM's h
    tiers_by_day: Mapping[str, Mapping[str, int]]  # UTC day -> tier -> evaluations
    spend_by_day: Mapping[str, Mapping[str, float]]  # UTC day -> tier -> USD


@dataclass(frozen=True)
class Image:
    file: str  # in the report's directory
    alt: str
    caption: str


def draw(charts: StageCharts, directory: Path, prefix: str) -> list[Image]:
    """Writes the stage's charts into `directory` as `<prefix>*.png`: per series family (series differing only in
    prompt version) the scores and the CUSUM, then the tiers and spend."""
    with plt.rc_context({"date.converter": "concise"}):  # short date labels on the time axes
        return _draw(charts, directory, prefix)


def _draw(charts: StageCharts, directory: Path, prefix: str) -> list[Image]:
    families: dict[tuple[str, str, str], list[SeriesTrace]] = {}
    for trace in charts.series:
        families.setdefault(trace.key.family, []).append(trace)
    images = []
    for number, (family, traces) in enumerate(sorted(families.items())):
        name = "/".join(family)
        alerts = [a for a in charts.alerts if a.series.family == family]
        images.append(_save(_scores(name, traces, alerts, charts.block), directory / f"{prefix}scores-{number}.png",
                            f"Mean judge score of {name} per block of {charts.block} scores over time, one colour per "
                            f"prompt version and one marker per response model|fingerprint, {len(alerts)} alert(s) "
                            "marked with their cause", f"{name}: scores over time by prompt version and variant"))
        images.append(_save(_cusum(traces, alerts, charts.limit), directory / f"{prefix}cusum-{number}.png",
                            f"CUSUM chart of {name} per prompt version: upper and lower sums of {charts.block}-score "
                            f"block means in sd units against the limits plus and minus {charts.limit:g}",
                            f"{name}: CUSUM of the uniform-stratum scores as the monitor ran it, with its limit "
                            f"h={charts.limit:g}"))
    images.append(_save(_tiers(charts), directory / f"{prefix}tiers.png",
                        "Stacked bars of judged evaluations per UTC day by judge tier, and judge spend in USD per day "
                        "by tier", "judge tiers' mix and spend per day"))
    return images


def _save(figure: Any, path: Path, alt: str, caption: str) -> Image:
    try:
        figure.savefig(path, dpi=_DPI)
    finally:
        plt.close(figure)
    return Image(path.name, alt, caption)


def _times(unix_nano: Sequence[int]) -> Any:
    """As numpy datetimes, which matplotlib draws on a date axis (UTC)."""
    return np.array(unix_nano, dtype="datetime64[ns]")


def _mark_alerts(axes: Any, alerts: Sequence[Alert]) -> None:
    shown: set[str] = set()
    for alert in alerts:
        axes.axvline(_times([alert.time_unix_nano])[0], color=_CAUSE_COLOURS.get(alert.cause, "black"), linewidth=1,
                     alpha=0.7, label=None if alert.cause in shown else f"alert: {alert.cause}")
        shown.add(alert.cause)


def _scores(name: str, traces: list[SeriesTrace], alerts: list[Alert], block: int) -> Any:
    figure, axes = plt.subplots(figsize=(10, 4.5), layout="constrained")
    colours = plt.get_cmap("tab10")
    variants = sorted({v for trace in traces for v in trace.blocks})
    first = [min((t for points in trace.blocks.values() for t, _ in points), default=0) for trace in traces]
    for colour, (_, trace) in enumerate(sorted(zip(first, traces, strict=True), key=lambda x: (x[0], x[1].key))):
        for variant, points in sorted(trace.blocks.items()):
            style = variants.index(variant)
            axes.plot(_times([t for t, _ in points]), [m for _, m in points], color=colours(colour % 10),
                      marker=_MARKERS[style % len(_MARKERS)], linestyle=_LINESTYLES[style % len(_LINESTYLES)],
                      markersize=4, linewidth=1, label=f"{trace.key.prompt_version or '-'}, {variant}"
                      + ("" if trace.uniform else " (all judged)"))
    _mark_alerts(axes, alerts)
    axes.set_ylim(-0.02, 1.02)
    axes.set_ylabel(f"mean score per {block} scores")
    axes.set_title(f"{name}: block means of the judge scores by prompt version and variant")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="lower left")
    return figure


def _cusum(traces: list[SeriesTrace], alerts: list[Alert], limit: float) -> Any:
    figure, rows = plt.subplots(len(traces), 1, figsize=(10, 2.6 * len(traces) + 0.6), sharex=True,
                                squeeze=False, layout="constrained")
    for (axes,), trace in zip(rows, traces, strict=True):
        axes.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label=f"+h = {limit:g}")
        axes.axhline(-limit, color="tab:red", linestyle="--", linewidth=1, label=f"-h = {-limit:g}")
        axes.axhline(0, color="grey", linewidth=0.5)
        if trace.cusum:
            times = _times([t for t, _, _ in trace.cusum])
            axes.step(times, [up for _, up, _ in trace.cusum], where="post", color="tab:green", label="C+ (upward)")
            axes.step(times, [-low for _, _, low in trace.cusum], where="post", color="tab:blue",
                      label="-C- (downward)")
        else:
            axes.text(0.5, 0.5, "no uniform-stratum scores", transform=axes.transAxes, ha="center")
        sums = {t: (up, -low) for t, up, low in trace.cusum}
        for t, direction in trace.alarms:  # where the sum crossed: the monitor restarts the chart after it
            axes.plot(_times([t]), [sums[t][0 if direction == "up" else 1]], marker="x", color="tab:red",
                      markersize=8, linestyle="none", label=None if t != trace.alarms[0][0] else "alarm")
        _mark_alerts(axes, [a for a in alerts if a.series == trace.key])
        axes.set_title(f"{trace.key}", fontsize=10)
        axes.set_ylabel("sd of block means")
        axes.legend(fontsize=7, loc="upper left")
    return figure


def _tiers(charts: StageCharts) -> Any:
    figure, (mix, spend) = plt.subplots(2, 1, figsize=(10, 6.5), layout="constrained")
    tiers = sorted({tier for by_day in (charts.tiers_by_day, charts.spend_by_day) for day in by_day.values()
                    for tier in day})
    colours = {tier: f"C{i % 10}" for i, tier in enumerate(tiers)}  # a tier has one colour in both charts
    _stacked(mix, charts.tiers_by_day, colours, "evaluations judged per UTC day by tier", "evaluations")
    if charts.spend_by_day:
        _stacked(spend, charts.spend_by_day, colours, "judge spend per UTC day by tier", "USD")
    else:
        spend.set_axis_off()
        spend.text(0.5, 0.5, "no judge spend recorded", transform=spend.transAxes, ha="center")
    return figure


def _stacked(axes: Any, by_day: Mapping[str, Mapping[str, float]], colours: Mapping[str, str], title: str,
             unit: str) -> None:
    days = sorted(by_day)
    bottom = [0.0] * len(days)
    for tier in sorted({tier for day in by_day.values() for tier in day}):
        heights = [float(by_day[day].get(tier, 0)) for day in days]
        axes.bar(days, heights, bottom=bottom, label=tier, color=colours[tier])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.margins(y=0.1)
    axes.set_title(title)
    axes.set_ylabel(unit)
    axes.tick_params(axis="x", labelrotation=45 if len(days) > 7 else 0)
    if days:
        axes.legend(fontsize=8)
