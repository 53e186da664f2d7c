"""Where components keep state: a `storage:` setting names an extension. One offering `storage` keeps files on this
machine (file_storage: an exporter's disk queue, which belongs to one process); one offering `database` keeps a
store's tables (file_storage: a SQLite file; postgresql: a schema shared by a fleet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tracejudge.processor.component.database import Database
from tracejudge.processor.component.factory import Reference


class Storage(Protocol):
    """What a component with a `storage:` setting finds through the host (the extension); the extension's config
    answers the same without starting anything (for the CLI, reading stores of a config)."""

    def path_for(self, component: str) -> str:
        """The database file of one component, e.g. `judge_queue` → <directory>/judge_queue.db."""
        ...

    def space_exhausted(self) -> bool:
        """A store could not delete for want of space: free some (a reserve kept for this), True if it could."""
        ...


def storage_reference(name: str, path: str) -> Reference:
    """A `storage:` setting at `path`: it must name a storage extension (file_storage) the service lists."""
    return Reference(path, name, "extensions", "storage", "a file_storage extension")


class DatabaseStorage(Protocol):
    """What a component whose `storage:` names a `database` extension finds through the host; the extension's config
    answers the same without starting anything (for the CLI)."""

    def database(self, component: str, migrations: Sequence[str], what: str, read_only: bool = False) -> Database:
        """One store of a component (`judge_queue`, `judge_queue.stats`), migrated to `migrations` unless
        `read_only` (the CLI reading while the service writes). `what` names it in errors."""
        ...

    @property
    def shared(self) -> bool:
        """Whether other machines can reach it (a fleet's instances share it)."""
        ...


def database_reference(name: str, path: str) -> Reference:
    """A `storage:` setting at `path` whose stores are databases: file_storage (SQLite) or postgresql."""
    return Reference(path, name, "extensions", "database", "a file_storage or postgresql extension")
