"""The standby worker's database connections: a small pool of bare DBAPI connections (issue 18).

``standby_store.py``'s statements run on these; no SQLAlchemy, so no SQLAlchemy pool either. The
standby's few threads share at most ``size`` connections, opened on demand. A connection that
failed with a 'gone' error (the database went away) is closed rather than handed out again, and on
PostgreSQL one that rested a while is pinged first, as ``core/data/pool.py`` does for the engine.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any


class StandbyDatabaseError(Exception):
    """A driver error, with the driver's message.

    ``gone``: the database cannot be used (unreachable, down, locked: the driver's
    ``OperationalError`` or ``InterfaceError``), not merely one statement refused.
    """

    def __init__(self, message: str, *, gone: bool) -> None:
        super().__init__(message)
        self.gone = gone


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A connection as ``db.make_engine`` makes one: timeout 30 and ``db._sqlite_pragmas``."""
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    return connection


def rollback(connection: Any, driver: Any) -> bool:
    """Roll back; True if that failed too (the connection is unusable)."""
    try:
        connection.rollback()
    except driver.Error:
        return True
    return False


class Pool:
    """At most ``size`` connections, opened on demand; the last one given back is handed out first.

    A connection that failed with a 'gone' error is closed, not kept. On PostgreSQL one that rested
    longer than ``ping_after`` seconds is pinged first (``SELECT 1``, which begins the caller's
    transaction) and replaced if the database dropped it meanwhile, as ``core/data/pool.py`` does.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        size: int,
        ping_after: float | None,
        wrap: Callable[[BaseException], StandbyDatabaseError],
    ) -> None:
        if size < 1:
            raise ValueError(f"The standby's pool needs room for one connection at least, not {size}.")
        self._connect, self._size, self._ping_after, self._wrap = connect, size, ping_after, wrap
        self._idle: list[tuple[Any, float]] = []
        self._open = 0
        self._closed = False
        self._condition = threading.Condition()

    def get(self) -> Any:
        with self._condition:
            while True:
                if self._closed:
                    raise StandbyDatabaseError("The standby's database connections are closed.", gone=True)
                if self._idle:
                    connection, rested_since = self._idle.pop()
                    break
                if self._open < self._size:
                    self._open += 1
                    connection, rested_since = None, 0.0
                    break
                self._condition.wait()
        try:
            if connection is not None and not self._alive(connection, rested_since):
                _close(connection)
                connection = None
            return connection if connection is not None else self._connect()
        except Exception as error:
            self.put(None, True)
            raise self._wrap(error) from error

    def _alive(self, connection: Any, rested_since: float) -> bool:
        if self._ping_after is None or time.monotonic() - rested_since < self._ping_after:
            return True
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except Exception:
            return False
        return True

    def put(self, connection: Any, broken: bool) -> None:
        with self._condition:
            if connection is not None and not broken and not self._closed:
                self._idle.append((connection, time.monotonic()))
            else:
                self._open -= 1
                if connection is not None:
                    _close(connection)
            self._condition.notify()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            for connection, _rested in self._idle:
                _close(connection)
            self._open -= len(self._idle)
            self._idle.clear()
            self._condition.notify_all()


def _close(connection: Any) -> None:
    with suppress(Exception):  # already closed by the server, or half-gone: nothing more to give back
        connection.close()
