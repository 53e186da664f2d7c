"""`tracejudge calibration`: per metric and judge version, whether scores predict user feedback (AUROC with CI and
n) and agree with reviewers' labels."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import IO

from tracejudge.processor.cli.config_option import add_config_option, with_config
from tracejudge.processor.processors.judge_queue.stores import opened_stats
from tracejudge.processor.service.config import Config
from tracejudge.stats.calibration import calibrate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")


def run(args: argparse.Namespace) -> int:
    return with_config(args, lambda config: calibration(config, args.json, sys.stdout))


def calibration(config: Config, as_json: bool, out: IO[str]) -> int:
    """Per metric and judge version: AUROC of the score for user outcomes, agreement with reviewers, warnings."""
    found = 0
    for name, store, _ in opened_stats(config):
        for result in calibrate(store):
            found += 1
            document = {"stage": name, **dataclasses.asdict(result), "warning": result.warning}
            if as_json:
                print(json.dumps(document, sort_keys=True), file=out)
                continue
            print(f"{result.metric} (judge version {result.judge_version}, stage {name})", file=out)
            outcome = result.outcome
            if outcome is not None:
                print(f"  predicts user outcomes: AUROC {outcome.value:.3f} (95% CI {outcome.ci_low:.3f}-"
                      f"{outcome.ci_high:.3f}; {result.n_unhappy} unhappy vs {result.n_control} {result.control})",
                      file=out)
            if result.agreement is not None:
                kappa = "-" if result.kappa is None else f"{result.kappa:.2f}"
                print(f"  agrees with reviewers: {result.agreement:.1%} of {result.n_labels} labels (kappa {kappa})",
                      file=out)
            if result.warning:
                print(f"  WARNING: {result.warning}", file=out)
    if not found:
        print("nothing judged yet: calibration needs judged traces with feedback", file=out)
    return 0
