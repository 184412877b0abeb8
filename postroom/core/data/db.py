"""Where the data lives: the data directory, the database URL, engines, sessions and schema upgrades."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL_ENV = "POSTROOM_DATABASE_URL"
HOME_ENV = "POSTROOM_HOME"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def data_dir() -> Path:
    """``$POSTROOM_HOME``, else ``~/.local/share/postroom``; created on first use."""
    configured = os.environ.get(HOME_ENV)
    path = Path(configured).expanduser() if configured else Path.home() / ".local" / "share" / "postroom"
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    if resolved.startswith("sqlite"):
        engine = create_engine(resolved, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(resolved, pool_pre_ping=True)


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
