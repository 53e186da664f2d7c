"""The `postgresql` extension: a PostgreSQL database that holds what a fleet of tracejudge instances must share (the
judge queue and its leases, trace-assembly buffers, decision records, feedback and labels, the verdict cache, the
daily spend, the statistics and alerts). Named by a judge stage's `storage:` (and `service.decisions.storage`) the
way `file_storage` is; each store gets a schema of its own (`judge_queue`, `judge_queue_stats`, `decisions`).
Exporters' sending queues stay on each instance's disk (`file_storage`).

    extensions:
      postgresql:
        dsn: ${env:TRACEJUDGE_PG_DSN}    # postgresql://user:password@host:5432/tracejudge
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tracejudge.processor.component.confmap import Duration
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings
from tracejudge.processor.component.postgres import PostgresDatabase, schema_name


@dataclass(frozen=True)
class PostgresqlConfig:
    dsn: str  # a libpq connection string or URI; its password is best given through ${env:...}
    max_connections: int = 4  # per store and process
    connect_timeout: Duration = 10.0

    def validate(self, path: str) -> None:
        problems = []
        if not self.dsn.strip():
            problems.append(f"{path}.dsn: required, e.g. postgresql://tracejudge@db.internal:5432/tracejudge")
        if self.max_connections < 1:
            problems.append(f"{path}.max_connections: must be at least 1")
        if self.connect_timeout <= 0:
            problems.append(f"{path}.connect_timeout: must be positive")
        if problems:
            raise ConfigError(problems)

    def database(self, component: str, migrations: Sequence[str], what: str, read_only: bool = False) -> Database:
        """A store's schema (`read_only`: neither created nor migrated, only checked)."""
        return PostgresDatabase(self.dsn, schema_name(component), migrations, what, self.max_connections,
                                self.connect_timeout, read_only)

    shared = True


class Postgresql:
    def __init__(self, settings: CreateSettings, config: PostgresqlConfig) -> None:
        self._config = config

    def database(self, component: str, migrations: Sequence[str], what: str, read_only: bool = False) -> Database:
        return self._config.database(component, migrations, what, read_only)

    shared = True

    async def start(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


factory = Factory("postgresql", "extensions", PostgresqlConfig, Postgresql, offers=frozenset({"database"}))
