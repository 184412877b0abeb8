"""Hot Core statements run straight on the DBAPI cursor on PostgreSQL: an empty fetch cycle's two, and the claim.

Why: an empty fetch cycle (issue 16) is one transaction of two statements, and SQLAlchemy's Core
execution around each (the compiled cache's lookup, the execution context, the result object)
cost more CPU than psycopg2's own round trip: one such read-and-release transaction measured
0.45 ms of worker CPU through Core and 0.22 ms on the cursor, the same SQL.

The statement stays a Core statement: it is compiled once for the dialect, its parameters are
built by the compiled statement and passed through its types' bind processors, and its row is
passed through their result processors, as Core does. SQLAlchemy keeps owning the connection and
the transaction (it begins, commits, rolls back and pools it). A DBAPI error is raised as
SQLAlchemy's own (``DBAPIError.instance``), the connection invalidated when the error says the
database went away, so the worker's outage handling sees what it sees from Core.

Core runs the statement instead wherever the cursor would hide something: on any dialect other
than PostgreSQL (SQLite), while a listener watches statements (``before_cursor_execute``: tests
and ``bench.coordination`` count them) and while the engine echoes its SQL.

The scheduler's claim (``core/worker/leases.py``, two to several a second) runs the same way: the
claims are most of an idle worker's CPU.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select


@dataclass(frozen=True)
class _Compiled:
    compiled: Compiled
    #: The bind and result processors of the statement's types (``None`` where a value passes as it is).
    binds: dict[str, Any]
    results: list[Any]
    row: Callable[..., Any]
    #: The compiled SQL runs as it is (no parameter left for Core to render at execution).
    complete: bool


class DriverStatement:
    """One Core ``SELECT`` or ``... RETURNING`` statement, run on the cursor where it can be."""

    def __init__(self, statement: Select[Any] | UpdateBase) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def first(self, connection: Connection, parameters: Mapping[str, Any]) -> Any:
        """The statement's first row (a named tuple of its columns, or Core's ``Row``), or None."""
        if not self._direct(connection):
            return connection.execute(self.statement, dict(parameters)).first()
        rows = self._run(connection, parameters, every=False)
        return rows[0] if rows else None

    def all(self, connection: Connection, parameters: Mapping[str, Any]) -> list[Any]:
        """Every row of the statement (named tuples of its columns, or Core's ``Row`` objects)."""
        if not self._direct(connection):
            return list(connection.execute(self.statement, dict(parameters)).all())
        return self._run(connection, parameters, every=True)

    def _direct(self, connection: Connection) -> bool:
        """PostgreSQL, nobody watching statements, no echo, and SQL that is complete once compiled."""
        if not _unwatched_postgresql(connection):
            return False
        prepared = self._compiled.get(connection.dialect.name) or self._compile(connection.dialect)
        return prepared.complete

    def _run(self, connection: Connection, parameters: Mapping[str, Any], *, every: bool) -> list[Any]:
        dialect = connection.dialect
        prepared = self._compiled[dialect.name]
        values = dict(prepared.compiled.construct_params(dict(parameters)) or {})
        for name, process in prepared.binds.items():
            values[name] = process(values[name])
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None  # a connection in a transaction holds one
        cursor = None
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute(prepared.compiled.string, values)
            if every:
                rows = cursor.fetchall()
            else:
                first = cursor.fetchone()
                rows = [] if first is None else [first]
            cursor.close()
        except dialect.loaded_dbapi.Error as error:
            gone = dialect.is_disconnect(error, dbapi_connection, cursor)
            if gone:
                connection.invalidate(error)
            raise DBAPIError.instance(
                prepared.compiled.string,
                values,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=dialect,
            ) from error
        results = prepared.results
        return [prepared.row(*(v if p is None else p(v) for p, v in zip(results, row, strict=True))) for row in rows]

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        binds: dict[str, Any] = {}
        for bind, rendered in compiled.bind_names.items():
            name = compiled.escaped_bind_names.get(rendered, rendered)
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds[name] = process
        columns = list(self.statement.exported_columns)
        results: list[Any] = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        row = namedtuple("Row", [column.key for column in columns])  # type: ignore[misc]
        # An ``IN`` list or a value rendered into the SQL at execution (``expanding``, ``literal_execute``)
        # is completed by Core's execution, which the cursor path skips: such a statement stays on Core.
        complete = not any(bind.expanding or bind.literal_execute for bind in compiled.binds.values())
        prepared = _Compiled(compiled, binds, results, row, complete)
        with self._lock:
            self._compiled[dialect.name] = prepared
        return prepared


def _unwatched_postgresql(connection: Connection) -> bool:
    """PostgreSQL, with nobody watching statements and no echo."""
    engine = connection.engine
    return (
        connection.dialect.name == "postgresql"
        and not engine.echo
        and not engine.dispatch.before_cursor_execute
        and not engine.dispatch.after_cursor_execute
    )
