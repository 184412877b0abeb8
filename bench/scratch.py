"""Throw-away PostgreSQL databases for the benchmarks: created on the local server, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

#: The server the benchmarks make their databases on (any database on it works as the admin URL).
DEFAULT_PG_URL = os.environ.get(
    "POSTROOM_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def scratch_postgresql(server_url: str = DEFAULT_PG_URL, prefix: str = "postroom_bench") -> Iterator[str]:
    """The URL of a new, empty database on ``server_url``'s server; dropped (with its sessions) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
