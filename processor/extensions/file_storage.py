"""The `file_storage` extension: the directory where components keep their SQLite databases (a Storage)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tracejudge.processor.component.errors import ConfigError
from tracejudge.processor.component.factory import Factory
from tracejudge.processor.component.host import CreateSettings


@dataclass(frozen=True)
class FileStorageConfig:
    directory: str
    create_directory: bool = True

    def validate(self, path: str) -> None:
        if not self.directory:
            raise ConfigError(f"{path}.directory: must not be empty")
        if not self.create_directory and not os.path.isdir(self.directory):
            raise ConfigError(f"{path}.directory: {self.directory!r} does not exist (or set create_directory)")

    def path_for(self, component: str) -> str:
        """The database file of one component, e.g. `llm_extract` → <directory>/llm_extract.db."""
        return os.path.join(self.directory, component.replace("/", "_") + ".db")


class FileStorage:
    def __init__(self, settings: CreateSettings, config: FileStorageConfig) -> None:
        self._config = config

    def path_for(self, component: str) -> str:
        return self._config.path_for(component)

    async def start(self) -> None:
        if self._config.create_directory:
            os.makedirs(self._config.directory, exist_ok=True)

    async def shutdown(self) -> None:
        return None


factory = Factory("file_storage", "extensions", FileStorageConfig, FileStorage, offers=frozenset({"storage"}))
