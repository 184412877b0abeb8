"""Databases for tests: a fresh SQLite file or an emptied PostgreSQL database per test.

PostgreSQL is the machine's server (README, "The two commands"): each test session creates its own database
and drops it at the end, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from postroom.core.app import Postroom
from postroom.core.data.models import Base

PG_ADMIN_URL = os.environ.get(
    "POSTROOM_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _ensure_postgresql_running() -> None:
    engine = create_engine(PG_ADMIN_URL)
    for attempt in range(2):
        try:
            with engine.connect():
                return
        except Exception:
            if attempt == 0 and shutil.which("pg_ctlcluster") and Path("/etc/postgresql").exists():
                version = sorted(os.listdir("/etc/postgresql"))[-1]
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False
                )
                time.sleep(2)
        finally:
            engine.dispose()
    raise RuntimeError(f"PostgreSQL is not reachable at {make_url(PG_ADMIN_URL).render_as_string()}")


@pytest.fixture(scope="session")
def postgresql_server_url() -> Iterator[str]:
    """A database of this test session's own on the machine's PostgreSQL, with the schema created."""
    _ensure_postgresql_running()
    name = f"postroom_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    app = Postroom(url)
    app.init()
    app.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template() -> Iterator[Path]:
    """An initialised SQLite file, copied for each test (faster than migrating each time)."""
    directory = Path(tempfile.mkdtemp(prefix="prdb"))
    path = directory / "template.sqlite"
    app = Postroom(f"sqlite:///{path}")
    app.init()
    app.dispose()
    try:
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _emptying_statement(connection: Connection) -> str:
    """SQL that empties every postroom table and restarts every sequence, as a fresh ``init`` leaves it.

    ``DELETE`` (children first) rather than ``TRUNCATE``: on a test's handful of rows it takes a few
    milliseconds, where ``TRUNCATE`` of 26 tables makes new files for each and takes a quarter of a
    second, paid by every PostgreSQL test. ``ALTER SEQUENCE ... RESTART`` gives ids from 1 again, as
    ``TRUNCATE ... RESTART IDENTITY`` did.
    """
    sequences = connection.execute(
        text("SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences")
    ).scalars()
    deletes = "".join(f'DELETE FROM "{table.name}";' for table in reversed(Base.metadata.sorted_tables))
    restarts = "".join(f"ALTER SEQUENCE {sequence} RESTART;" for sequence in sequences)
    return deletes + restarts


def _empty_postgresql(url: str) -> None:
    """Empty this session's PostgreSQL database and put the default contact centre back."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        if url not in _emptying:
            _emptying[url] = _emptying_statement(connection)
        connection.exec_driver_sql(_emptying[url])
        connection.execute(
            text("INSERT INTO contact_center (id, name, created_at) VALUES (1, 'default', now())")
        )


#: One engine per session database and its emptying SQL, made on the first clean-up.
_engines: dict[str, Engine] = {}
_emptying: dict[str, str] = {}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, initialised database: every database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "postroom.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgresql_server_url")
    _empty_postgresql(url)
    return url


@pytest.fixture
def pg_database_url(postgresql_server_url: str) -> str:
    """A clean PostgreSQL database, for what only PostgreSQL can show (SKIP LOCKED, leases)."""
    _empty_postgresql(postgresql_server_url)
    return postgresql_server_url


@pytest.fixture
def app(database_url: str) -> Iterator[Postroom]:
    application = Postroom(database_url)
    try:
        yield application
    finally:
        application.dispose()
