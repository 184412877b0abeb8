"""Every query the resolvers and the pipeline run per mail is served by an index (EXPLAIN on PostgreSQL).

The planner prefers a sequential scan on small tables, so sequential scans are priced out
(``enable_seqscan = off``): a plan that still scans a table sequentially has no index to use.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event, text

from postroom.core.app import Postroom
from postroom.core.data import directory
from tests.support.desk import Desk
from tests.support.mail import make_mail

ALL_RESOLVERS = [
    "case-id",
    "customer",
    "customer-source-profile",
    "subject",
    "subject-customer",
    "subject-profile-customer",
    "observer-subject",
]
HOT_TABLES = ("ticket", "message", "message_address", "customer_email", "fetch_ledger", "routing_rule")


def test_per_mail_queries_are_served_by_indexes(pg_database_url: str) -> None:
    app = Postroom(pg_database_url)
    desk = Desk(app, ALL_RESOLVERS).setup()
    with app.transaction() as session:
        directory.add_customer(session, 1, "Bob", ["bob@a.test"])
    first = desk.deliver(make_mail("Order 1234", sender="bob@a.test", cc=["dave@corp.test"]))

    captured: list[tuple[str, Any]] = []

    def capture(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            captured.append((statement, parameters))

    event.listen(app.engine, "before_cursor_execute", capture)
    try:
        # Matches nothing, so every resolver in the list runs its query.
        desk.deliver(make_mail("Re: Unrelated", sender="dave@corp.test", in_reply_to="nobody@x.test"))
        desk.deliver(make_mail("Re: Order 1234", sender="bob@a.test", in_reply_to=first.message_id))
    finally:
        event.remove(app.engine, "before_cursor_execute", capture)
    assert len(captured) > 10

    scanned: list[str] = []
    with app.engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        for statement, parameters in captured:
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            for table in re.findall(r"Seq Scan on (\w+)", plan):
                if table in HOT_TABLES:
                    scanned.append(f"{table}: {statement.split(chr(10))[0][:80]} ...\n{plan}")
    app.dispose()
    assert scanned == [], "\n\n".join(scanned)
