"""Where a judge_queue processor keeps its stores, and how the CLI (series, alerts, calibration, replay, report,
golden) finds them in a config without starting anything: judge_queue.db (the queue, cache and spend) and beside it
judge_queue.stats.db (evaluations, alerts, feedback, the statistics' checkpoints)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracejudge.processor.component.factory import component_type
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.store import SqliteStore


def stats_path(queue_path: str) -> Path:
    """The statistics' database beside the judge queue's: judge_queue.db -> judge_queue.stats.db."""
    return Path(queue_path).with_suffix(".stats.db")


def queue_path(stats_db: Path) -> Path:
    """The judge queue's database beside its statistics': judge_queue.stats.db -> judge_queue.db."""
    return stats_db.with_name(stats_db.name.removesuffix(".stats.db") + ".db")


def stats_stores(config: Any) -> Iterator[tuple[str, Path, StatsConfig]]:
    """(stage name, stats database, stats settings) of every judge stage with statistics on, in a parsed Config."""
    for name, settings in config.processors.items():
        if component_type(name) != "judge_queue" or not settings.stats.enabled:
            continue
        storage = config.extensions.get(settings.storage)
        if storage is not None:  # a config that parsed: its storage is a file_storage extension
            yield name, stats_path(storage.path_for(name)), settings.stats


def opened_stats(config: Any) -> Iterator[tuple[str, SqliteStore, StatsConfig]]:
    """Each judge stage's store that exists, closed after use."""
    for name, path, settings in stats_stores(config):
        if not path.exists():
            continue
        store = SqliteStore(path)
        try:
            yield name, store, settings
        finally:
            store.close()
