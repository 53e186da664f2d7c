"""`tracejudge worker`: judge workers alone, without receivers: they lease from the judge stages' queues (the files
of the config's storage), judge, and send evaluation spans through the exporters of the same config (sending queues
of their own). Run as many as the judging needs; `tracejudge serve` starts its own (`workers.processes`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from tracejudge.processor.cli.config_option import add_config_option
from tracejudge.processor.cli.serve import LOG_LEVELS
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import component_type
from tracejudge.processor.component.file_lock import try_lock
from tracejudge.processor.service import factories
from tracejudge.processor.service.config import Config, config_or_report, parse_config
from tracejudge.processor.service.service import Service
from tracejudge.processor.service.worker_pool import READY_LINE

log = logging.getLogger("tracejudge")

PARENT_POLL_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser, "the YAML config (the same as the receiving instances')")
    parser.add_argument("--stage", action="append", default=[],
                        help="a judge stage (processor name) to judge for; repeat for several (default: every one)")
    parser.add_argument("--name", default="worker", help="this worker's name, unique per machine: its exporters' "
                        "disk queues are named after it (default: %(default)s)")
    parser.add_argument("--metrics-address", help="where this worker serves /metrics (default: the config's "
                        "service.telemetry.metrics.address; \"\" turns it off)")
    # how `tracejudge serve` starts its own workers: the config document on stdin, and its pid to outlive
    parser.add_argument("--config-json", help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, default=0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.config_json == "-":  # {"document": the config as read, "environ": what it was expanded with}
        try:
            given = json.loads(sys.stdin.read())
            config: Config | None = parse_config(json.dumps(given["document"]), given["environ"])
        except ConfigError as e:
            print("\n".join(e.problems), file=sys.stderr)
            return 2
    else:
        config = config_or_report(args.config)
    if config is None:
        return 2
    stages = [name for name in config.processors if component_type(name) == "judge_queue"]
    unknown = [name for name in args.stage if name not in stages]
    if unknown or not stages:
        print(f"no judge stage {', '.join(unknown)!s} in this config (it has: {', '.join(stages) or 'none'})"
              if unknown else "this config has no judge stage (a judge_queue processor) to work for", file=sys.stderr)
        return 2
    nice = max(config.processors[name].workers.nice for name in (args.stage or stages))
    if nice:
        os.nice(nice)  # receiving, in other processes, goes first when the CPU is short
    if args.metrics_address is not None:
        telemetry = config.service.telemetry
        config = dataclasses.replace(config, service=dataclasses.replace(config.service, telemetry=dataclasses.replace(
            telemetry, metrics=dataclasses.replace(telemetry.metrics, address=args.metrics_address))))
    logging.basicConfig(level=LOG_LEVELS[config.service.telemetry.logs.level],
                        format=f"%(asctime)s %(levelname)s [{args.name}] %(name)s: %(message)s")
    try:
        locks = _hold_name(config, args.name)
    except OSError as e:
        print(f"tracejudge worker could not lock its name {args.name!r}: {e}", file=sys.stderr)
        return 1
    try:
        asyncio.run(_work(config, args.name, args.stage, args.parent))
    except ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tracejudge worker could not start: {e}", file=sys.stderr)
        return 1
    finally:
        for lock in locks:
            lock.close()
    return 0


def _hold_name(config: Config, name: str) -> list[TextIO]:
    """One process per worker name and storage directory: the files named after it (an exporter's disk queue) are
    its alone. A worker started again while the one before it still drains (its receiving process was killed and
    it noticed) waits for it."""
    locks: list[TextIO] = []
    for extension in config.service.extensions:
        if "storage" not in factories.factory("extensions", component_type(extension)).offers:
            continue
        path = Path(config.extensions[extension].path_for(name)).with_suffix(".lock")
        waited = False
        while (lock := try_lock(path)) is None:
            if not waited:
                log.warning("another worker named %r holds %s; waiting for it to stop", name, path)
                waited = True
            time.sleep(0.2)
        locks.append(lock)
    return locks


async def _work(config: Config, name: str, stages: list[str], parent: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    service = Service(config, worker_process=name, stages=stages)
    try:
        await service.start()
        print(READY_LINE, service.metrics_port or 0, flush=True)
        log.info("judging for %s", ", ".join(service.processors))
        while not stopping.is_set():
            if parent and os.getppid() != parent:  # the serve process that started this one is gone
                log.warning("the process that started this worker (pid %d) is gone; stopping", parent)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), PARENT_POLL_S)
    finally:
        await service.shutdown()
