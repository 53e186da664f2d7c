"""The `tracejudge` command. Each subcommand is a module of this package with `add_arguments(parser)` and
`run(args) -> exit status`, imported only when that subcommand runs: `tracejudge --help` loads none of them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand: (module under tracejudge.processor.cli, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the pipelines of a config until interrupted"),
    "worker": ("worker", "judge workers alone (no receivers), for scaling judging apart from receiving"),
    "migrate-store": ("migrate_store", "copy a file_storage deployment's shared state (judge queue, statistics, "
                                       "decision records) into PostgreSQL, for a fleet"),
    "validate": ("validate", "check a config and report every problem, without starting anything"),
    "judge": ("judge", "judge records of a JSONL file (id, query, context, response)"),
    "explain": ("explain", "print what happened to each LLM span of a trace, with its scores"),
    "series": ("series", "per series: the current estimate with its CI and n, the last comparisons"),
    "alerts": ("alerts", "the alerts raised so far, with their causes and example traces"),
    "adapt": ("adapt", "refit the embedded judge on reviewers' labels, feedback or golden sets; install it as a new "
                       "judge version only if it beats the current one on held-out labels"),
    "calibration": ("calibration", "per metric and judge version: whether scores predict user feedback (AUROC "
                                   "with CI and n) and agree with reviewers' labels"),
    "replay": ("replay", "re-run the statistics over the stored evaluations and print the alerts (exit 1 if "
                         "they differ from the stored ones)"),
    "report": ("report", "per series quality with CIs, CUSUM and alerts, the judge tiers' mix and spend; --html "
                         "DIR also writes a page with charts"),
    "golden": ("golden", "golden datasets from production failures"),
    "gate": ("gate", "CI gate: score a golden dataset and exit 1 if a metric dropped significantly from a "
                     "baseline"),
    "demo": ("demo", "run the whole loop on a simulated RAG app, in about a minute"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="tracejudge", description="OpenTelemetry trace processor that evaluates "
                                     "LLM spans online: forwards every span, judges a sample, tracks quality per "
                                     "version.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    module = None
    for name, (module_name, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(f"{__name__}.{module_name}")
            module.add_arguments(command)
    args = parser.parse_args(argv)
    if module is None:  # the command came after an option argparse took for the command's
        parser.error(f"give the command first: tracejudge {args.command} ...")
    return int(module.run(args))
