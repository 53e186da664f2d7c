"""`tracejudge alerts`: the alerts raised so far, with their causes and example traces."""

from __future__ import annotations

import argparse
import sys
from typing import IO

from tracejudge.processor.cli.config_option import add_config_option, with_config
from tracejudge.processor.processors.judge_queue.stores import opened_stats
from tracejudge.processor.service.config import Config
from tracejudge.stats.records import Alert


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument("--trace", default="", help="only alerts linking to this trace id")


def run(args: argparse.Namespace) -> int:
    return with_config(args, lambda config: alerts(config, args.trace, args.json, sys.stdout))


def alerts(config: Config, trace_id: str, as_json: bool, out: IO[str]) -> int:
    count = 0
    for _, store, _ in opened_stats(config):
        for alert in store.alerts(trace_id):
            count += 1
            if as_json:
                print(alert.to_json(), file=out)
                continue
            print(alert_text(alert), file=out)
    if not count and not as_json:
        print("no alerts", file=out)
    return 0


def alert_text(alert: Alert) -> str:
    """The alert in a few lines; its CI appended unless the detector's summary gives it already."""
    ci = (f", 95% CI {alert.ci_low:+.3f}..{alert.ci_high:+.3f}"
          if alert.ci_low is not None and alert.ci_high is not None and "CI" not in alert.summary else "")
    lines = [f"[{alert.cause}] {alert.series} via {alert.detector}: {alert.summary}{ci}"]
    lines += [f"    example: trace {trace} span {span}" for trace, span in alert.examples]
    return "\n".join(lines)
