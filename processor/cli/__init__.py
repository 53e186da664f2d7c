"""The `tracejudge` command: serve a config, check one, judge a file, explain what happened to a trace, and read
the statistics (series, alerts, replay). Further commands live in modules of their own (`COMMANDS`): each has
`add_parser(commands)`, which registers its subcommand with `set_defaults(run=...)`, a function of the parsed
arguments returning the exit status."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Protocol

from tracejudge.judge import offline
from tracejudge.judge.cascade import CascadeConfig
from tracejudge.judge.server_config import OpenAiJudgeConfig
from tracejudge.judge.verdict import METRICS
from tracejudge.processor.cli.explain import explain
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.service.config import Config, config_or_report
from tracejudge.processor.service.service import Service, decisions_path

from . import demo, gate, golden, report
from . import stats as stats_cli

log = logging.getLogger("tracejudge")


class CommandModule(Protocol):
    def add_parser(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...

# Modules with an `add_parser(commands)` (see the module docstring).
COMMANDS: tuple[CommandModule, ...] = (demo, gate, golden, report)

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tracejudge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("serve", "run the pipelines of a config until interrupted"),
                            ("validate", "check a config and report every problem, without starting anything")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", default="otel-config.yaml", help="path to the YAML config "
                             "(default: %(default)s)")
    judge = commands.add_parser("judge", help="judge records of a JSONL file (id, query, context, response)")
    judge.add_argument("--input", required=True, help="JSONL records with id, query, context, response")
    judge.add_argument("--output", required=True, help="JSONL verdicts: id, score (1 = good), label, tier, error.type")
    judge.add_argument("--metric", choices=METRICS, default="faithfulness")
    judge.add_argument("--tier", choices=offline.TIERS, default="local",
                       help="local: the embedded judge; heavy: an OpenAI-compatible API (--base-url, --model); "
                            "cascade: local, then heavy for scores inside the uncertainty band")
    judge.add_argument("--base-url", help="heavy tier: the API's base URL, e.g. http://localhost:8000/v1")
    judge.add_argument("--model", help="heavy tier: the judge model")
    judge.add_argument("--api-key-env", default="OPENAI_API_KEY",
                       help="heavy tier: the environment variable holding the API key (default: %(default)s)")
    judge.add_argument("--uncertainty-band", nargs=2, type=float, metavar=("LOW", "HIGH"), default=(0.3, 0.7),
                       help="cascade: local scores in [LOW, HIGH] go to the heavy tier (default: 0.3 0.7)")
    why = commands.add_parser("explain", help="print what happened to each LLM span of a trace, with its scores")
    why.add_argument("trace_id", help="the trace id, 32 hex digits")
    why.add_argument("--config", default="otel-config.yaml", help="the config the processor runs with, to find "
                     "its decision records (default: %(default)s)")
    why.add_argument("--json", action="store_true", help="one JSON record per line instead of a table")
    for name, help_text in (("series", "per series: the current estimate with its CI and n, the last comparisons"),
                            ("alerts", "the alerts raised so far, with their causes and example traces"),
                            ("calibration", "per metric and judge version: whether scores predict user feedback "
                                            "(AUROC with CI and n) and agree with reviewers' labels"),
                            ("replay", "re-run the statistics over the stored evaluations and print the alerts "
                                       "(exit 1 if they differ from the stored ones)")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", default="otel-config.yaml", help="the config the processor runs with "
                             "(default: %(default)s)")
        if name != "replay":
            command.add_argument("--json", action="store_true", help="JSON lines instead of text")
        if name == "alerts":
            command.add_argument("--trace", default="", help="only alerts linking to this trace id")
    for module in COMMANDS:
        module.add_parser(commands)
    args = parser.parse_args(argv)
    if hasattr(args, "run"):
        return int(args.run(args))
    if args.command == "judge":
        heavy = None
        if args.tier != "local":
            if not (args.base_url and args.model):
                parser.error(f"--tier {args.tier} needs --base-url and --model")
            heavy = OpenAiJudgeConfig(base_url=args.base_url, model=args.model,
                                      api_key=os.environ.get(args.api_key_env, "none"))
        band = CascadeConfig(uncertainty_band=tuple(args.uncertainty_band))
        try:
            band.validate("--uncertainty-band")
        except ConfigError as e:
            parser.error(str(e))
        return offline.run(args.input, args.output, args.metric, args.tier, heavy, band)
    config = config_or_report(args.config)
    if config is None:
        return 2
    if args.command == "validate":
        print(f"{args.config}: valid ({len(config.service.pipelines)} pipeline(s))")
        return 0
    if args.command == "explain":
        return explain(decisions_path(config), args.trace_id, args.json, sys.stdout)
    if args.command == "series":
        return stats_cli.series(config, args.json, sys.stdout)
    if args.command == "alerts":
        return stats_cli.alerts(config, args.trace, args.json, sys.stdout)
    if args.command == "calibration":
        return stats_cli.calibration(config, args.json, sys.stdout)
    if args.command == "replay":
        return stats_cli.replay_alerts(config, sys.stdout)
    logging.basicConfig(level=_LEVELS[config.service.telemetry.logs.level],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(config))
    except ConfigError as e:  # raised while building components, e.g. an unreadable certificate
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tracejudge could not start: {e}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: Config) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    service = Service(config)
    try:
        await service.start()
        for name, receiver in service.receivers.items():
            if receiver.grpc is not None:
                log.info("receiver %s: OTLP/gRPC on port %d", name, receiver.grpc.port)
            if receiver.http is not None:
                log.info("receiver %s: OTLP/HTTP on port %d", name, receiver.http.port)
        for name, eval_service in service.eval_services.items():
            log.info("%s: EvalService: gRPC on port %d, HTTP on port %d (0: off)", name, eval_service.grpc_port,
                     eval_service.http_port)
        if service.metrics_port is not None:
            log.info("metrics: http://localhost:%d/metrics", service.metrics_port)
        log.info("tracejudge is running; Ctrl-C to stop")
        await stopping.wait()
        log.info("shutting down: draining sending queues")
    finally:
        await service.shutdown()

