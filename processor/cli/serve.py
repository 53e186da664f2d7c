"""`tracejudge serve`: run the pipelines of a config until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from tracejudge.processor.cli.config_option import add_config_option, with_config
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.service.config import Config
from tracejudge.processor.service.service import Service

log = logging.getLogger("tracejudge")

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser, "the YAML config")


def run(args: argparse.Namespace) -> int:
    return with_config(args, _run)


def _run(config: Config) -> int:
    logging.basicConfig(level=LOG_LEVELS[config.service.telemetry.logs.level],
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
        if service.metrics_port is not None:
            log.info("metrics: http://localhost:%d/metrics", service.metrics_port)
        log.info("tracejudge is running; Ctrl-C to stop")
        await stopping.wait()
        log.info("shutting down: draining sending queues")
    finally:
        await service.shutdown()
