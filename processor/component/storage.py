"""Where components keep state on disk: a `storage:` setting names an extension that offers `storage`."""

from __future__ import annotations

from typing import Protocol

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
