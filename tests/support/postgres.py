"""A real PostgreSQL server from Debian's packages for tests: initialised in a temporary directory, on a free
loopback port, run as the `postgres` user when the tests run as root (PostgreSQL refuses root), stopped and
removed afterwards. `database()` gives each test a fresh database of its own. Fixtures (registered in
tests/conftest.py): `postgres`, the session's server, and `open_database`, which runs a store test on both engines.

    with PostgresServer() as server:
        dsn = server.database("store_test")
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.process import free_port
from tracejudge.processor.component.database import Database
from tracejudge.processor.component.postgres import PostgresDatabase, schema_name
from tracejudge.processor.component.sqlite import SqliteDatabase

USER = "tracejudge"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None (`make test` installs the package)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """`durable`: PostgreSQL's own defaults (each commit synced); else, for tests, nothing is synced."""

    def __init__(self, durable: bool = False) -> None:
        self._durable = durable
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql package")
        self._bin = bin_dir
        self._dir = Path(tempfile.mkdtemp(prefix="tracejudge-pg-"))
        self.port = free_port()
        self._created = 0

    def _run(self, *argv: str) -> None:
        command = [str(self._bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # PostgreSQL will not run as root: as its own user
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({result.returncode}): {result.stderr or result.stdout}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres")
        data = self._dir / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self._durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self._dir / "server.log"), "-w", "start")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str = "") -> str:
        """A new, empty database; its DSN."""
        import psycopg

        self._created += 1
        name = name or f"test_{self._created}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.dsn(name)

    def stop(self) -> None:
        if (self._dir / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self._dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session; each test that needs one takes a database of its own. Without
    the package a local run skips those tests; CI fails."""
    if binaries() is None:
        message = "PostgreSQL is not installed: `make test` installs Debian's postgresql package"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(message)
        pytest.skip(message)
    with PostgresServer() as server:
        yield server


# Opens a store's database on the engine under test: (migrations, store name, what) -> Database; the same name
# opens the same store again (as a restarted process, or another one, would).
OpenDatabase = Callable[[Sequence[str], str, str], Database]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenDatabase]:
    """The store tests run on both engines, so that they cannot drift apart."""
    opened: list[Database] = []
    dsn = request.getfixturevalue("postgres").database() if request.param == "postgresql" else ""

    def open_one(migrations: Sequence[str], name: str, what: str) -> Database:
        database: Database = (PostgresDatabase(dsn, schema_name(name), migrations, what) if dsn else
                              SqliteDatabase(tmp_path / f"{name}.db", migrations, what))
        opened.append(database)
        return database

    yield open_one
    for database in opened:
        with contextlib.suppress(Exception):  # closed by the test already
            database.close()
