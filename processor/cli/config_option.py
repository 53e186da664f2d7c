"""The `--config FILE` option of the commands that read a config, and loading it as they all do: its problems
printed, each with its YAML path, and exit status 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tracejudge.processor.service.config import Config, config_or_report

DEFAULT = "otel-config.yaml"


def add_config_option(parser: argparse.ArgumentParser,
                      help_text: str = "the config the processor runs with") -> None:
    parser.add_argument("--config", default=DEFAULT, help=f"{help_text} (default: %(default)s)")


def with_config(args: argparse.Namespace, command: Callable[[Config], int]) -> int:
    """`command(config)`, or 2 once the config's problems are printed."""
    config = config_or_report(args.config)
    return 2 if config is None else command(config)
