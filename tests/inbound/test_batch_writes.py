"""A fetch batch's processing writes in a fixed number of statements (issue 18), and stays right.

New tickets are inserted together at the end of the batch, the threads its replies follow are read
in one query, and a new customer is written without flushing the rest; yet a reply joins a ticket
opened earlier in the same batch, every ticket gets its case token, and the signals name the ids.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, customer_for_sender
from postroom.core.data.models import Message, Ticket
from postroom.core.data.profiles import get_profile
from postroom.core.inbound.pipeline import InboundPipeline
from postroom.core.mail.subjects import format_case_token
from tests.support.desk import Desk
from tests.support.mail import make_mail
from tests.support.statements import watched_statements

KNOWN = [f"known{n}@example.org" for n in range(60)]


def batch(size: int, tag: str, stored_thread: str) -> list[tuple[str, bytes]]:
    """``size`` mails of known customers: new threads, replies to one of them, replies to a stored mail."""
    mails = []
    for n in range(size):
        kind = n % 3
        if kind == 0:
            raw = make_mail(f"Question {tag} {n}", sender=KNOWN[n], message_id=f"{tag}-{n}@example.org")
        elif kind == 1:
            first = n - n % 3
            raw = make_mail(
                f"Re: Question {tag} {first}",
                sender=KNOWN[first],
                message_id=f"{tag}-{n}@example.org",
                references=[f"{tag}-{first}@example.org"],
            )
        else:
            raw = make_mail(
                "Re: The stored thread",
                sender=KNOWN[0],
                message_id=f"{tag}-{n}@example.org",
                references=[stored_thread],
            )
        mails.append((f"{tag}-{n}", raw))
    return mails


def store(app: Postroom, mails: list[tuple[str, bytes]]) -> None:
    with app.transaction() as session:
        profile = get_profile(session, "support", DEFAULT_CONTACT_CENTER_ID)
        InboundPipeline(session, app.plugins, profile).store_batch(mails)


def prepared_desk(app: Postroom) -> str:
    """The desk with case-id, its known customers, and one stored thread; the thread's Message-ID."""
    Desk(app, ["case-id"]).setup()
    with app.transaction() as session:
        for address in KNOWN:
            customer_for_sender(session, DEFAULT_CONTACT_CENTER_ID, address, None)
    store(app, [("stored", make_mail("The stored thread", sender=KNOWN[0], message_id="stored@example.org"))])
    return "stored@example.org"


def test_a_batch_of_forty_mails_costs_the_statements_of_a_batch_of_ten(pg_database_url: str) -> None:
    """On PostgreSQL every write of the batch's processing goes in one statement for all its mails."""
    app = Postroom(pg_database_url)
    try:
        stored = prepared_desk(app)
        with watched_statements(app.engine) as small:
            store(app, batch(10, "small", stored))
        with watched_statements(app.engine) as large:
            store(app, batch(40, "large", stored))
    finally:
        app.dispose()
    assert len(large) == len(small), "\n".join(large)
    assert len(large) <= 20, "\n".join(large)


def test_replies_in_a_batch_join_tickets_opened_in_it_with_case_tokens_and_signals(app: Postroom) -> None:
    stored = prepared_desk(app)
    heard: list[tuple[str, Any]] = []

    def created(_sender: object, **kwargs: Any) -> None:
        heard.append(("created", kwargs["ticket_id"]))

    def updated(_sender: object, **kwargs: Any) -> None:
        heard.append(("updated", kwargs["ticket_id"]))

    events.ticket_created.connect(created)
    events.ticket_updated.connect(updated)
    try:
        with events.held():
            store(app, batch(9, "b", stored))
    finally:
        events.ticket_created.disconnect(created)
        events.ticket_updated.disconnect(updated)

    with Session(app.engine) as session:
        by_id = {m.message_id: m for m in session.scalars(select(Message).where(Message.message_id.like("b-%")))}
        stored_ticket = session.scalar(select(Message.ticket_id).where(Message.message_id == stored))
        tickets = {t.id: t for t in session.scalars(select(Ticket))}
    # 0, 3 and 6 open threads; 1, 4 and 7 answer them in the same batch; 2, 5 and 8 answer the stored one.
    threads = {by_id[f"b-{n}@example.org"].ticket_id for n in (0, 3, 6)}
    assert len(threads) == 3 and stored_ticket not in threads
    assert by_id["b-1@example.org"].ticket_id == by_id["b-0@example.org"].ticket_id
    assert by_id["b-4@example.org"].ticket_id == by_id["b-3@example.org"].ticket_id
    assert by_id["b-7@example.org"].ticket_id == by_id["b-6@example.org"].ticket_id
    assert {by_id[f"b-{n}@example.org"].ticket_id for n in (2, 5, 8)} == {stored_ticket}
    assert all(t.case_token == format_case_token(t.id) for t in tickets.values())
    assert sorted(i for kind, i in heard if kind == "created") == sorted(threads)
    assert [i for kind, i in heard if kind == "updated"] == [by_id[f"b-{n}@example.org"].ticket_id for n in range(9)]


def test_raw_mails_and_bodies_are_compressed_with_lz4_on_postgresql(pg_database_url: str) -> None:
    """pglz cost the server a third of a fetch's time per mail; the migration switches to lz4."""
    app = Postroom(pg_database_url)
    try:
        with app.engine.connect() as connection:
            found = dict(
                connection.execute(
                    text(
                        "SELECT attrelid::regclass::text || '.' || attname, attcompression FROM pg_attribute"
                        " WHERE (attrelid, attname) IN (('message_raw'::regclass, 'raw'),"
                        " ('message'::regclass, 'text_body'), ('message'::regclass, 'html_body'))"
                    )
                ).all()
            )
    finally:
        app.dispose()
    assert found == {"message_raw.raw": "l", "message.text_body": "l", "message.html_body": "l"}
