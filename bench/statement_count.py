"""``postroom`` run with counters on every database engine it makes: statements, transactions, round trips.

    python -m bench.statement_count fetch --profile bench     (counts go to $POSTROOM_BENCH_COUNTS)

``bench.inbound`` runs ``postroom fetch`` once like this, untimed (the counters cost a little), and
reads the JSON written at exit. Counted, per engine event:

- ``statements``: each ``before_cursor_execute`` (an INSERT of many rows through insertmanyvalues
  counts once per batch of rows it sends, as that is one round trip), plus each ``COPY`` of raw bytes;
- ``by_kind``: those statements by their first word (SELECT, INSERT, UPDATE, SAVEPOINT, ...);
- ``commits``, ``transactions`` (Connection ``begin`` events) and ``checkouts`` (pool check-outs);
- ``round_trips``: statements + commits, plus on PostgreSQL one ``BEGIN`` per transaction (psycopg2
  sends it on its own) and one ``pool_pre_ping`` per check-out; SQLite's are calls, not round trips.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections import Counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

COUNTS_ENV = "POSTROOM_BENCH_COUNTS"
#: If set, every statement's first line is appended to this file too (to see which ones a mail costs).
LOG_ENV = "POSTROOM_BENCH_STATEMENTS"

_counts: Counter[str] = Counter()
_kinds: Counter[str] = Counter()
_dialects: set[str] = set()
_log = open(os.environ[LOG_ENV], "a") if os.environ.get(LOG_ENV) else None  # noqa: SIM115 - open until exit


@event.listens_for(Engine, "before_cursor_execute")
def _statement(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
    _dialects.add(conn.dialect.name)
    _counts["statements"] += 1
    _kinds[statement.lstrip().split(None, 1)[0].upper()] += 1
    if _log is not None:
        _log.write(" ".join(statement.split())[:160] + "\n")


@event.listens_for(Engine, "begin")
def _begin(_conn: Any) -> None:
    _counts["transactions"] += 1


@event.listens_for(Engine, "commit")
def _commit(_conn: Any) -> None:
    _counts["commits"] += 1


@event.listens_for(Pool, "checkout")
def _checkout(*_args: Any) -> None:
    _counts["checkouts"] += 1


def _count_copies() -> None:
    """Raw bytes go to PostgreSQL through the DBAPI's COPY, which no engine event sees: count the call."""
    from postroom.core.data import messages

    insert_raws = messages.insert_raws

    def counted(session: Any, rows: Any) -> None:
        if rows and session.get_bind().dialect.name == "postgresql":
            _counts["statements"] += 1
            _kinds["COPY"] += 1
        insert_raws(session, rows)

    messages.insert_raws = counted


def _write() -> None:
    path = os.environ.get(COUNTS_ENV)
    if not path:
        return
    round_trips = _counts["statements"] + _counts["commits"]
    if "postgresql" in _dialects:
        round_trips += _counts["transactions"] + _counts["checkouts"]
    document = {**_counts, "round_trips": round_trips, "by_kind": dict(_kinds), "dialects": sorted(_dialects)}
    with open(path, "w") as file:
        json.dump(document, file)


def main() -> None:
    _count_copies()
    atexit.register(_write)
    from postroom.console import main as postroom_main

    sys.argv = ["postroom", *sys.argv[1:]]
    postroom_main()


if __name__ == "__main__":
    main()
