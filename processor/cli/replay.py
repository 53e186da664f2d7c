"""`tracejudge replay`: re-run the statistics over the stored evaluations and print the alerts (exit 1 if they
differ from the stored ones)."""

from __future__ import annotations

import argparse
import sys
from typing import IO

from tracejudge.processor.cli.config_option import add_config_option, with_config
from tracejudge.processor.processors.judge_queue.stores import opened_stats
from tracejudge.processor.service.config import Config
from tracejudge.stats.replay import replay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    return with_config(args, lambda config: replay_alerts(config, sys.stdout))


def replay_alerts(config: Config, out: IO[str]) -> int:
    """Prints the replayed alerts as JSON lines; exit 1 if they differ from the stored ones."""
    differ = False
    for name, store, settings in opened_stats(config):
        replayed = [alert.to_json() for alert in replay(store, settings)]
        stored = [alert.to_json() for alert in store.alerts()]
        for line in replayed:
            print(line, file=out)
        if not same_alerts(replayed, stored):
            differ = True
            print(f"{name}: replay gave {len(replayed)} alerts, the store holds {len(stored)} that differ "
                  "(settings changed since they were raised?)", file=out)
    return 1 if differ else 0


def same_alerts(replayed: list[str], stored: list[str]) -> bool:
    """Equal as sets of JSON lines: alerts raised at the same moment come back from the store in any order."""
    return sorted(replayed) == sorted(stored)
