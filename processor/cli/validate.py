"""`tracejudge validate`: check a config and report every problem, each naming its YAML path, without starting
anything (exit 2 if there are any)."""

from __future__ import annotations

import argparse

from tracejudge.processor.service.config import config_or_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="otel-config.yaml", help="path to the YAML config (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    config = config_or_report(args.config)
    if config is None:
        return 2
    print(f"{args.config}: valid ({len(config.service.pipelines)} pipeline(s))")
    return 0
