"""When each prompt version was first seen, shared by every instance that names the same `storage:` (a fleet's
PostgreSQL): the "new prompt version" rule then samples a new version's spans the same way on every instance, as
the seeded hash does for the uniform floor. One row per (service, prompt version); the first instance to see it
writes its time, the others read that back (once per version and process: the sampler caches it)."""

from __future__ import annotations

from tracejudge.processor.component.database import Database

MIGRATIONS = ("""CREATE TABLE prompt_versions (service TEXT NOT NULL, prompt_version TEXT NOT NULL,
    first_seen_unix_s REAL NOT NULL, PRIMARY KEY (service, prompt_version))""",)
WHAT = "the sampler's prompt versions"


class PromptVersions:
    def __init__(self, database: Database) -> None:
        self._db = database

    def first_seen(self, service: str, prompt_version: str, now: float) -> float:
        """When the version was first seen by any instance (`now`, if this is the first)."""
        with self._db.write() as tx:
            tx.execute("INSERT INTO prompt_versions VALUES (?, ?, ?) ON CONFLICT (service, prompt_version) "
                       "DO NOTHING", (service, prompt_version, now))
            ((first,),) = tx.execute("SELECT first_seen_unix_s FROM prompt_versions WHERE service = ? AND "
                                     "prompt_version = ?", (service, prompt_version))
        return float(first)

    def close(self) -> None:
        self._db.close()
