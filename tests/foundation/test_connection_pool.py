"""The PostgreSQL pool pings a connection only after it rested, and replaces one found dead (issue 16).

A pre-ping on every check-out was a second transaction per transaction on the server; the pool
now pings only a connection unused for a while, which is when a restarted database has closed it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from postroom.core.data.pool import ping_after_rest, pool_options


def test_a_rested_connection_whose_backend_died_is_replaced_at_check_out(pg_database_url: str) -> None:
    engine = create_engine(pg_database_url, **pool_options())
    ping_after_rest(engine, after=0.0)  # every check-out counts as after a rest
    try:
        with engine.connect() as connection:
            dead = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        killer = create_engine(pg_database_url, poolclass=NullPool)  # not from the pool under test
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
        killer.dispose()

        with engine.connect() as connection:
            alive = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

        assert alive != dead
    finally:
        engine.dispose()


def _pings_in_five_check_outs(url: str, after: float) -> int:
    engine = create_engine(url, **pool_options())
    ping_after_rest(engine, after=after)
    pings: list[int] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        for _ in range(5):
            with engine.begin() as connection:
                connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    return len(pings)


def test_a_connection_used_a_moment_ago_is_not_pinged(pg_database_url: str) -> None:
    assert _pings_in_five_check_outs(pg_database_url, after=3600) == 0
    # The same check-outs, each counted as after a rest: the first is a new connection, unpinged.
    assert _pings_in_five_check_outs(pg_database_url, after=0.0) == 4
