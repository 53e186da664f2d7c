"""What a `tracejudge gate` run found, per metric and per record, and how it is written: markdown for a CI job summary
(`$GITHUB_STEP_SUMMARY`) and JUnit XML (a test per metric, `regression[<metric>]`, and per record, `<metric>[<id>]`).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from tracejudge.stats.compare import INSUFFICIENT, REGRESSED, PairedComparison

MOST_REGRESSED = 5  # records listed in the summary
SUITE = "tracejudge.gate"
# characters XML 1.0 cannot carry, even escaped (control characters in a span's text)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class MetricResult:
    metric: str
    comparison: PairedComparison
    verdict: str  # REGRESSED | PASS | insufficient data
    passing_before: int  # of the n paired records, how many score at least the threshold in each run
    passing_after: int


@dataclass(frozen=True)
class RecordResult:
    metric: str
    id: str
    query: str
    baseline: float | None
    current: float | None
    unjudged: str  # why the current run has no score ("" when it has one)


@dataclass(frozen=True)
class GateResult:
    dataset: str
    source: str  # where the current scores come from
    baseline: str  # the baseline file
    baseline_created: str
    metrics: tuple[MetricResult, ...]  # empty when this run wrote the baseline instead of comparing
    records: tuple[RecordResult, ...]
    notes: tuple[str, ...]
    threshold: float
    alpha: float
    min_delta: float

    @property
    def regressed(self) -> bool:
        return any(m.verdict == REGRESSED for m in self.metrics)


def markdown(result: GateResult) -> str:
    lines = [f"## {_headline(result)}", "",
             f"Dataset `{result.dataset}`: {len(result.records)} record(s). Scores: {result.source}. "
             f"Baseline `{result.baseline}`, " + ("written by this run." if not result.metrics else
                                                  f"created {result.baseline_created or 'at an unknown time'}."), ""]
    lines += _comparison_table(result) if result.metrics else _baseline_table(result)
    if result.notes:
        lines += ["", "**Notes**", *(f"- {_cell(note)}" for note in result.notes)]
    worst = sorted((r for r in result.records if r.baseline is not None and r.current is not None
                    and r.current < r.baseline), key=lambda r: (r.current or 0) - (r.baseline or 0))
    if worst and result.metrics:
        lines += ["", "### Most regressed records", "", "| metric | id | query | baseline → current |",
                  "|:--|:--|:--|:--|"]
        lines += [f"| {r.metric} | `{_cell(r.id)}` | {_cell(_excerpt(r.query))} | {r.baseline:.3f} → "
                  f"{r.current:.3f} |" for r in worst[:MOST_REGRESSED]]
    return "\n".join(lines) + "\n"


def _headline(result: GateResult) -> str:
    if not result.metrics:
        return "tracejudge gate: baseline written"
    regressed = [m.metric for m in result.metrics if m.verdict == REGRESSED]
    if regressed:
        return f"❌ tracejudge gate: significant regression in {', '.join(regressed)}"
    if all(m.verdict == INSUFFICIENT for m in result.metrics):
        return "⚠️ tracejudge gate: not enough data (no metric has 2 records scored in both runs)"
    return "✅ tracejudge gate: no significant regression"


def _comparison_table(result: GateResult) -> list[str]:
    lines = [f"Regressed = a mean drop of at least {result.min_delta:g} with one-sided paired t-test p < "
             f"{result.alpha:g}; a record passes at a score of {result.threshold:g} or more.", "",
             "| metric | n | baseline | current | delta | 95% CI | p (worse) | passing before → after | verdict |",
             "|:--|--:|--:|--:|--:|:--|--:|:--|:--|"]
    for m in result.metrics:
        c = m.comparison
        verdict = f"**{m.verdict}**" if m.verdict == REGRESSED else m.verdict
        lines.append(f"| {m.metric} | {c.n} | {_number(c.baseline_mean)} | {_number(c.current_mean)} | "
                     f"{_number(c.delta, '+')} | {_interval(c)} | {_p(c.p_worse)} | {m.passing_before}/{c.n} → "
                     f"{m.passing_after}/{c.n} | {verdict} |")
    return lines


def _baseline_table(result: GateResult) -> list[str]:
    lines = ["| metric | scored | mean | passing | not scored |", "|:--|--:|--:|--:|--:|"]
    for metric in dict.fromkeys(r.metric for r in result.records):
        scores = [r.current for r in result.records if r.metric == metric and r.current is not None]
        mean = math.fsum(scores) / len(scores) if scores else math.nan
        unscored = sum(r.metric == metric and r.current is None for r in result.records)
        lines.append(f"| {metric} | {len(scores)} | {_number(mean)} | "
                     f"{sum(s >= result.threshold for s in scores)}/{len(scores)} | {unscored} |")
    return lines


def junit(result: GateResult) -> str:
    suite = ET.Element("testsuite", name=SUITE)
    for m in result.metrics:
        case = _case(suite, f"regression[{m.metric}]")
        c = m.comparison
        if m.verdict == REGRESSED:
            ET.SubElement(case, "failure", message=f"{m.metric} regressed: mean {_number(c.baseline_mean)} → "
                          f"{_number(c.current_mean)}").text = (
                f"delta {_number(c.delta, '+')}, 95% CI {_interval(c)}, one-sided p {_p(c.p_worse)} (alpha "
                f"{result.alpha:g}), minimum delta {result.min_delta:g}, n {c.n}; passing {m.passing_before} → "
                f"{m.passing_after}")
        elif m.verdict == INSUFFICIENT:
            ET.SubElement(case, "skipped", message=f"insufficient data: {c.n} record(s) scored in both runs")
    for r in result.records:
        case = _case(suite, f"{r.metric}[{r.id}]")
        if r.current is None:
            ET.SubElement(case, "skipped", message=_xml(f"not scored: {r.unjudged}"))
        elif r.current < result.threshold:
            before = "" if r.baseline is None else f" (baseline {r.baseline:.3f})"
            ET.SubElement(case, "failure", message=f"score {r.current:.3f} < threshold {result.threshold:g}"
                          f"{before}").text = _xml(f"query: {r.query}")
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for kind, attribute in (("failure", "failures"), ("skipped", "skipped")):
        suite.set(attribute, str(sum(case.find(kind) is not None for case in cases)))
    suite.set("errors", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _case(suite: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=SUITE, name=_xml(name))


def _xml(text: str) -> str:
    return _NOT_XML.sub("\N{REPLACEMENT CHARACTER}", text)


def _number(x: float, sign: str = "") -> str:
    return "n/a" if math.isnan(x) else f"{x:{sign}.3f}"


def _interval(c: PairedComparison) -> str:
    return "n/a" if math.isnan(c.ci_low) else f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"


def _p(p: float | None) -> str:
    return "n/a" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _cell(text: str) -> str:
    """Markdown table cells: one line, no column breaks."""
    return " ".join(text.split()).replace("|", "\\|")
