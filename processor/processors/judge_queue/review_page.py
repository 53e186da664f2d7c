"""The review page, on the admin address (`GET /review`): the series with a sparkline of their recent scores, the
alerts with links to their example traces, and the review queue, where a person labels a verdict pass or fail with
a note (`POST /review/label`). A label is stored as reviewer feedback (`labels`, source `reviewer`), which is what
`tracejudge calibration` compares the judge with. Server-rendered HTML, no script."""

from __future__ import annotations

import collections
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tracejudge.processor.pdata.feedback import Feedback
from tracejudge.processor.processors.judge_queue.alert_spans import alert_message, example_links
from tracejudge.stats.records import SeriesKey
from tracejudge.stats.store import Store

RECENT_SCORES = 60  # per series, in its sparkline
SHOWN_ALERTS = 20
SHOWN_REVIEWS = 100


def labelled(store: Store) -> dict[tuple[str, str, str], bool]:
    """Reviewers' verdicts so far: (trace id, span id, metric) → passed."""
    return {(record.trace_id, record.span_id, metric): passed for record in store.feedback()
            if record.source == "reviewer" for metric, passed in record.labels}


def review_entries(path: Path | None) -> list[dict[str, Any]]:
    """The newest entries of the review queue file (and of its rolled-over predecessor), newest first."""
    if path is None:
        return []
    lines: list[str] = []
    for file in (path.with_name(path.name + ".1"), path):
        try:
            lines += file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
    entries = []
    for line in reversed(lines[-SHOWN_REVIEWS * 2:]):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-write
    return entries[:SHOWN_REVIEWS]


def label(trace_id: str, span_id: str, metric: str, passed: bool, note: str) -> Feedback:
    return Feedback(trace_id=trace_id, span_id=span_id, comment=note, source="reviewer", labels=((metric, passed),))


def render(store: Store, review_path: Path | None, trace_links: Mapping[str, str],
           projects: Mapping[str, str]) -> str:
    recent: dict[SeriesKey, collections.deque[float]] = collections.defaultdict(
        lambda: collections.deque(maxlen=RECENT_SCORES))
    for batch in store.evaluations():
        for evaluation in batch:
            recent[evaluation.key].append(evaluation.score)
    verdicts = labelled(store)
    sections = [_series(recent), _alerts(store, trace_links, projects), _reviews(review_entries(review_path), verdicts)]
    return PAGE.format(body="\n".join(sections), labelled=len(verdicts))


def _series(recent: Mapping[SeriesKey, Sequence[float]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(key))}</td><td class=num>{len(scores)}</td>"
        f"<td class=num>{sum(scores) / len(scores):.3f}</td><td>{_sparkline(scores)}</td></tr>"
        for key, scores in sorted(recent.items(), key=lambda item: str(item[0])))
    return ("<h2>Series</h2><table><tr><th>series</th><th>recent scores</th><th>mean</th><th>trend</th></tr>"
            f"{rows or '<tr><td colspan=4>nothing judged yet</td></tr>'}</table>")


def _sparkline(scores: Sequence[float], width: int = 160, height: int = 28) -> str:
    if len(scores) < 2:
        return ""
    step = width / (len(scores) - 1)
    points = " ".join(f"{i * step:.1f},{(1 - score) * height:.1f}" for i, score in enumerate(scores))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="recent scores">'
            f'<polyline fill="none" stroke="#36c" stroke-width="1.5" points="{points}"/></svg>')


def _alerts(store: Store, trace_links: Mapping[str, str], projects: Mapping[str, str]) -> str:
    items = []
    for alert in store.alerts()[-SHOWN_ALERTS:][::-1]:
        links = example_links(alert, trace_links, projects.get(alert.series.service, ""))
        traces = " ".join(
            " ".join(f'<a href="{html.escape(url)}">{html.escape(name)}</a>' for name, url in link.urls.items())
            or html.escape(link.trace_id) for link in links)
        items.append(f"<li>{html.escape(alert_message(alert))}<br><small>examples: {traces or '-'}</small></li>")
    return f"<h2>Alerts</h2><ul>{''.join(items) or '<li>no alerts</li>'}</ul>"


def _reviews(entries: Sequence[dict[str, Any]], verdicts: Mapping[tuple[str, str, str], bool]) -> str:
    items = []
    for entry in entries:
        key = (str(entry.get("trace_id", "")), str(entry.get("span_id", "")), str(entry.get("metric", "")))
        judged = ", ".join(f"{v.get('tier')} {v.get('label')} ({v.get('score')})" for v in entry.get("verdicts", []))
        if key in verdicts:
            action = f"<b class=done>labelled {'pass' if verdicts[key] else 'fail'}</b>"
        else:
            hidden = "".join(f'<input type=hidden name={name} value="{html.escape(value)}">'
                             for name, value in zip(("trace_id", "span_id", "metric"), key, strict=True))
            action = (f'<form method=post action="/review/label">{hidden}'
                      '<input name=note placeholder="note" size=30> '
                      '<button name=passed value=pass>pass</button> <button name=passed value=fail>fail</button>'
                      "</form>")
        items.append(
            f"<li class=review><b>{html.escape(key[2])}</b> of trace {html.escape(key[0])} — "
            f"{html.escape(str(entry.get('reason', '')))}<br><small>judged: {html.escape(judged)}</small>"
            f"<br><i>asked</i>: {html.escape(str(entry.get('query', ''))[:400])}"
            f"<br><i>answered</i>: {html.escape(str(entry.get('response', ''))[:400])}<br>{action}</li>")
    return f"<h2>To review</h2><ul>{''.join(items) or '<li>nothing to review</li>'}</ul>"


PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>tracejudge review</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:72em}}td,th{{padding:2px 8px;text-align:left}}
.num{{text-align:right}}li{{margin:.6em 0}}.done{{color:#070}}</style></head>
<body><h1>tracejudge</h1><p id=labelled>{labelled} verdict(s) labelled by reviewers</p>
{body}
</body></html>
"""
