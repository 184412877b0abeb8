"""Where the data lives: the data directory, the database URL, engines, sessions and schema upgrades."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from postroom.core.contract.errors import UserError
from postroom.core.data.home import data_dir
from postroom.core.data.pool import ping_after_rest, pool_options

DATABASE_URL_ENV = "POSTROOM_DATABASE_URL"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def database_url(explicit: str | None = None) -> str:
    """The URL given on the command line, else ``$POSTROOM_DATABASE_URL``, else the SQLite file in the data dir."""
    if explicit:
        return explicit
    from_env = os.environ.get(DATABASE_URL_ENV)
    if from_env:
        return from_env
    return f"sqlite:///{data_dir() / 'postroom.sqlite'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI read while a worker writes; foreign keys are off by default in SQLite.
    # synchronous=FULL: a commit is on disk before postroom deletes the mail on the server, even
    # across a power cut (NORMAL in WAL mode may lose the last commits then).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (see :func:`database_url`), with SQLite tuned for one writer and many readers."""
    resolved = database_url(url)
    try:
        if resolved.startswith("sqlite"):
            engine = create_engine(resolved, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        options = pool_options()
        if make_url(resolved).get_driver_name() == "psycopg2":
            # An UPDATE of many rows (the ORM's flush of a fetch batch) goes as pages of 100 in one
            # round trip each (psycopg2's execute_batch), not one round trip per row; INSERTs keep
            # SQLAlchemy's insertmanyvalues either way.
            options["executemany_mode"] = "values_plus_batch"
        engine = create_engine(resolved, **options)
        ping_after_rest(engine)
        return engine
    except ImportError as error:  # SQLAlchemy imports the URL's driver when it makes the engine
        raise UserError(_missing_driver(resolved, error.name or str(error))) from error
    except ArgumentError as error:
        raise UserError(f"The database URL {_shown(resolved)!r} cannot be used: {error}.") from error


#: Drivers of PostgreSQL that SQLAlchemy knows, by the module each imports.
_POSTGRESQL_DRIVERS = {
    "psycopg2": "postgresql+psycopg2",
    "psycopg": "postgresql+psycopg",
    "pg8000": "postgresql+pg8000",
}


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def _missing_driver(url: str, module: str) -> str:
    """One sentence: the URL's driver is not installed, and which URL works with an installed one."""
    parsed = make_url(url)
    sentence = f"The database URL {_shown(url)!r} needs the Python module {module!r}, which is not installed"
    if parsed.get_backend_name() != "postgresql":
        return f"{sentence}; postroom supports SQLite (sqlite:///PATH) and PostgreSQL (postgresql+psycopg2://...)."
    installed = [scheme for name, scheme in _POSTGRESQL_DRIVERS.items() if importlib.util.find_spec(name)]
    if not installed:
        return f"{sentence}; install psycopg (psycopg 3) or psycopg2."
    other = parsed.set(drivername=installed[0]).render_as_string(hide_password=True)
    return f"{sentence}; use the installed driver with {other!r}, or install {module}."


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def upgrade_schema(engine: Engine) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_exists(engine: Engine) -> bool:
    return inspect(engine).has_table("media_profile")


def database_gone(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be used (down, unreachable, locked), not that one row is bad.

    The first stops a send run or a fetch, as nothing can be recorded; the second fails that one
    reply or mail and the run goes on (a refused value is a ``DataError`` or ``IntegrityError``).
    """
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def is_outage(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, says the database cannot be reached (a
    session whose connection broke answers later calls with ``PendingRollbackError``, raised from it)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if database_gone(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
