"""`tracejudge validate`: check a config and report every problem, each naming its YAML path, without starting
anything (exit 2 if there are any)."""

from __future__ import annotations

import argparse

from tracejudge.processor.cli.config_option import add_config_option, with_config
from tracejudge.processor.service.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser, "the YAML config")


def run(args: argparse.Namespace) -> int:
    def valid(config: Config) -> int:
        print(f"{args.config}: valid ({len(config.service.pipelines)} pipeline(s))")
        return 0

    return with_config(args, valid)
