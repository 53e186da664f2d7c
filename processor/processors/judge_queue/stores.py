"""Where a judge_queue processor keeps its stores, and how the CLI (series, alerts, calibration, replay, report,
golden) finds them in a config without starting anything: the judge queue (with the verdict cache and the spend
ledger), the statistics (evaluations, alerts, feedback, the series' checkpoints) and the embedded judge's installed
adaptations, each a database of the stage's `storage:` — file_storage: judge_queue.db, judge_queue.stats.db and
judge_queue.judges.db; postgresql: schemas judge_queue, judge_queue_stats and judge_queue_judges."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tracejudge.judge import adaptation_store, queue
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.errors import StoreMissing
from tracejudge.processor.component.factory import component_type
from tracejudge.processor.component.storage import DatabaseStorage
from tracejudge.stats import store
from tracejudge.stats.config import StatsConfig
from tracejudge.stats.store import StatsStore


@dataclass(frozen=True)
class StageStores:
    stage: str  # the processor's name, e.g. judge_queue or judge_queue/rag
    storage: DatabaseStorage

    def queue(self, read_only: bool = False) -> Database:
        return self.storage.database(self.stage, queue.MIGRATIONS, queue.WHAT, read_only)

    def stats(self, read_only: bool = False) -> Database:
        return self.storage.database(f"{self.stage}.stats", store.MIGRATIONS, store.WHAT, read_only)

    def adaptations(self, read_only: bool = False) -> Database:
        return self.storage.database(f"{self.stage}.judges", adaptation_store.MIGRATIONS, adaptation_store.WHAT,
                                     read_only)


def stats_stores(config: Any) -> Iterator[tuple[str, StageStores, StatsConfig]]:
    """(stage name, its stores, stats settings) of every judge stage with statistics on, in a parsed Config."""
    for name, settings in config.processors.items():
        if component_type(name) != "judge_queue" or not settings.stats.enabled:
            continue
        storage = config.extensions.get(settings.storage)
        if storage is not None:  # a config that parsed: its storage is a file_storage or postgresql extension
            yield name, StageStores(name, storage), settings.stats


def opened_stats(config: Any) -> Iterator[tuple[str, StatsStore, StatsConfig]]:
    """Each judge stage's statistics that exist, read-only, closed after use."""
    for name, stores, settings in stats_stores(config):
        try:
            opened = StatsStore(stores.stats(read_only=True))
        except StoreMissing:
            continue
        try:
            yield name, opened, settings
        finally:
            opened.close()
