"""The SQL statements an engine sends while a block runs, as a test counts or reads them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def watched_statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement ``engine`` sends to its cursors inside the block, in order.

    A listener on ``before_cursor_execute`` also makes ``core/data/driver_sql.py`` run its
    statements through Core, so what it sees is everything sent.
    """
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", watch)
