"""The PostgreSQL connection pool: big enough for the worker's threads, and pinged only after a rest.

Two costs the worker's empty fetch cycle used to pay on every transaction (issue 16):

- SQLAlchemy's default pool keeps 5 connections; the worker runs up to ``THREADS.high`` fetch
  threads and three helpers, so every connection above 5 was opened and closed again per use (a
  new PostgreSQL backend each time). The pool now keeps as many as the worker can use; it still
  opens them only on demand, so a command that uses one holds one.
- ``pool_pre_ping`` sent a ``SELECT 1`` (a transaction of its own on the server) before every
  check-out. A connection that was used a moment ago is alive, or the database went away in the
  meantime, which the next statement finds just as well: SQLAlchemy then drops every pooled
  connection, and the worker's outage handling (``core/worker/outage.py``) retries. So only a
  connection that rested in the pool longer than ``PING_AFTER_IDLE`` is pinged — the case the ping
  is for: a database restarted while nobody used it, which must not cost a command or a web
  request its first statement.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

from postroom.core.data.validation import THREADS

#: Connections kept open: every fetch thread, the scheduler, the outbox, the lease renewer, the
#: admin endpoint and IDLE's helpers at once.
POOL_SIZE = THREADS.high + 8
#: A connection unused for longer than this is pinged before it is handed out again.
PING_AFTER_IDLE = 10.0

_RESTED_SINCE = "postroom_rested_since"


def pool_options() -> dict[str, Any]:
    """``create_engine`` keywords for a PostgreSQL engine (the ping is added by :func:`ping_after_rest`)."""
    return {"pool_size": POOL_SIZE, "max_overflow": 16}


def ping_after_rest(engine: Engine, after: float = PING_AFTER_IDLE) -> None:
    """Ping a connection at check-out only if it rested in the pool longer than ``after`` seconds."""

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RESTED_SINCE] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        rested = record.info.pop(_RESTED_SINCE, None)
        if rested is None or time.monotonic() - rested < after:
            return  # new, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool replaces the connection and tries the next (SQLAlchemy's documented way).
            raise DisconnectionError(f"a pooled connection was found closed: {error}") from error
        if not alive:
            raise DisconnectionError("a pooled connection was found closed")

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)
