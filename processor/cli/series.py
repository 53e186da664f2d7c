"""`tracejudge series`: per series, the current estimate with its CI and n, and the last comparisons."""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from typing import IO, Any

from tracejudge.processor.cli.config_option import add_config_option, with_config
from tracejudge.processor.processors.judge_queue.stores import opened_stats
from tracejudge.processor.service.config import Config
from tracejudge.stats.replay import recover


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")


def run(args: argparse.Namespace) -> int:
    return with_config(args, lambda config: series(config, args.json, sys.stdout))


def series(config: Config, as_json: bool, out: IO[str]) -> int:
    found = 0
    for name, store, settings in opened_stats(config):
        monitor, _ = recover(store, settings)
        for key in sorted(monitor.series):
            found += 1
            status = {"stage": name, **monitor.series[key].status()}
            print(json.dumps(status, sort_keys=True) if as_json else _table(status), file=out)
    if not found:
        print("no series yet: nothing has been judged (or statistics are off); see `tracejudge explain`", file=out)
    return 0


def _table(status: dict[str, Any]) -> str:
    def number(x: Any) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    lines = [f"{status['series']}  (stage {status['stage']})"]
    ci = status["ci95 (weighted)"]
    lines.append(f"  score {number(status['mean_score (weighted, all judged)'])} "
                 f"[{number(ci[0])}, {number(ci[1])}] weighted over n={status['n']}; "
                 f"uniform stratum {number(status['mean_score (uniform stratum)'])} n={status['n_uniform']}; "
                 f"pass rate {number(status['pass_rate (weighted)'])}")
    lines.append(f"  CUSUM {number(status['cusum'])} / h={status['cusum_limit']:g} (reference: "
                 f"{status['cusum_reference']}); variant {status['variant']}"
                 + (f" (was {status['previous_variant']})" if status["previous_variant"] else ""))
    for detector, result in sorted(status["comparisons"].items()):
        lines.append(f"  {detector}: {_comparison(result)}")
    return "\n".join(lines)


def _comparison(result: dict[str, Any]) -> str:
    welch = result.get("welch")
    if welch:
        verdict = "REGRESSED" if welch["regressed"] else "no significant drop"
        return (f"{verdict}: {welch['baseline']:.3f} -> {welch['current']:.3f} ({welch['effect']:+.3f}, 95% CI "
                f"{welch['ci_low']:+.3f}..{welch['ci_high']:+.3f}, p={welch['p_value']:.2g}, n "
                f"{welch['n_baseline']} vs {welch['n_current']}); minimum detectable drop "
                f"{welch['minimum_detectable_drop']:.3f}, n per arm for the configured drop "
                f"{welch['n_needed_per_arm']}")
    if "verdict" in result:  # a canary: its verdict, then each test's difference
        tests = [f"{name} {test['difference']:+.3f} (p={test['p_value']:.2g}, n {test['n'][0]} vs {test['n'][1]})"
                 for name, test in sorted(result.items()) if isinstance(test, dict) and "difference" in test]
        return "; ".join([result["verdict"], *tests])
    if "shifted_mean" in result:
        when = datetime.fromtimestamp(result["at_unix_nano"] / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return (f"last alarm {result['direction']} at {when} UTC: mean about {result['shifted_mean']:.3f} over "
                f"{result['n']} scores against a reference of {result['reference_mean']:.3f} "
                f"(sd {result['reference_sd']:.3f}, {result['reference']})")
    return json.dumps(result, sort_keys=True)
