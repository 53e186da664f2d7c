"""Where installed adaptations live: beside the judge stage's other data (a SQLite file of its file_storage, or a
schema of its postgresql extension), so every process and instance of a fleet finds the same ones."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tracejudge.processor.component.database import Database
from tracejudge.processor.component.sqlite import SqliteDatabase

if TYPE_CHECKING:  # numpy: not for commands that only find this store's name (validate, the CLI's others)
    from .adaptation import Adaptation

MIGRATIONS = (
    """CREATE TABLE adaptations (version TEXT PRIMARY KEY, base TEXT NOT NULL, created_unix_s REAL NOT NULL,
        document TEXT NOT NULL)""",
    "CREATE INDEX adaptations_base ON adaptations (base, created_unix_s)",
)
WHAT = "the judge adaptations store"
LATEST = "latest"


class AdaptationStore:
    def __init__(self, database: Database | str | Path, read_only: bool = False) -> None:
        self._db = (SqliteDatabase(database, MIGRATIONS, WHAT, read_only) if isinstance(database, str | Path)
                    else database)

    def install(self, adaptation: Adaptation) -> None:
        with self._db.write() as tx:
            tx.execute("INSERT INTO adaptations (version, base, created_unix_s, document) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (version) DO NOTHING",
                       (adaptation.version, adaptation.base, adaptation.created_unix_s, adaptation.document()))

    def get(self, version: str) -> Adaptation | None:
        rows = self._db.query("SELECT document FROM adaptations WHERE version = ?", (version,))
        return _adaptation(rows[0][0]) if rows else None

    def latest(self, base: str) -> Adaptation | None:
        """The newest adaptation of the base judge `base`, or None."""
        rows = self._db.query("SELECT document FROM adaptations WHERE base = ? "
                              "ORDER BY created_unix_s DESC, version DESC LIMIT 1", (base,))
        return _adaptation(rows[0][0]) if rows else None

    def all(self) -> list[Adaptation]:
        rows = self._db.query("SELECT document FROM adaptations ORDER BY created_unix_s, version")
        return [_adaptation(row[0]) for row in rows]

    def close(self) -> None:
        self._db.close()


def _adaptation(document: str) -> Adaptation:
    from .adaptation import Adaptation

    return Adaptation.from_document(document)
