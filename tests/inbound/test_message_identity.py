"""A mail's identity on fetch: Message-ID and content together; a reused Message-ID loses no mail.

Real Dovecot and a local Maildir, delete-on-fetch, on SQLite and PostgreSQL (``database_url``).
"""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from sqlalchemy import select, update

from postroom.core.app import Postroom
from postroom.core.data.models import Direction, FetchLedger, LedgerOutcome, Message, MessageRaw
from postroom.core.mail.identity import content_digest
from tests.inbound.mailboxes import fetch_reports
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import make_mail

REUSED = "contact-form@shop.example"


def _form_mail(body: str, sender: str = "Carla <carla@example.org>") -> bytes:
    """A web form's mail: every one it sends has the same Message-ID."""
    return make_mail("Contact form", sender=sender, message_id=REUSED, body=body)


def _inbound(app: Postroom) -> list[tuple[str | None, int | None, bytes]]:
    """(Message-ID, ticket, raw bytes) of every inbound message, in the order stored."""
    with app.sessions() as session:
        rows = session.execute(
            select(Message.message_id, Message.ticket_id, MessageRaw.raw)
            .join(MessageRaw, MessageRaw.message_pk == Message.id)
            .where(Message.direction == Direction.INBOUND)
            .order_by(Message.id)
        ).all()
    return [(message_id, ticket, bytes(raw)) for message_id, ticket, raw in rows]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_two_mails_with_one_message_id_are_both_stored_on_tickets_and_a_repeated_mail_once(
    postroom_cli: Cli, app: Postroom, dovecot: Dovecot, protocol: str
) -> None:
    user, _ = dovecot.new_user(f"reused-{protocol}")
    first = _form_mail("Order 4711 has not arrived.\r\n")
    second = _form_mail("Please cancel my subscription.\r\n", sender="Bob <bob@example.org>")
    dovecot.deliver_many(user, [first, second, first])  # the first one listed twice
    add_dovecot_profile(postroom_cli, dovecot, user, protocol, "--delete-on-fetch")
    Desk(app).route("support")

    report = fetch_reports(postroom_cli)["support"]

    assert (report["fetched"], report["stored"], report["duplicates"], report["deleted"]) == (3, 2, 1, 3)
    stored = _inbound(app)
    assert [raw for _id, _ticket, raw in stored] == [first, second]
    assert all(message_id == REUSED and ticket is not None for message_id, ticket, _raw in stored)
    assert dovecot.count(user) == 0

    # The same mail again in a later cycle is still a duplicate of the one stored.
    dovecot.deliver(user, second)
    again = fetch_reports(postroom_cli)["support"]
    assert (again["stored"], again["duplicates"], again["deleted"]) == (0, 1, 1)
    assert len(_inbound(app)) == 2


def test_the_same_mail_twice_in_a_maildir_is_stored_once_and_a_forged_message_id_loses_nothing(
    postroom_cli: Cli, app: Postroom, tmp_path: Path
) -> None:
    customer = make_mail("My invoice", sender="Carla <carla@example.org>", message_id="real-1@example.org")
    forged = make_mail("Ignore this", sender="Mallory <m@evil.example>", message_id="real-1@example.org")
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    folder.add(customer)
    folder.add(customer)  # a second file with the very same bytes
    folder.add(forged)
    postroom_cli.ok(
        "profile", "add", "support", "--fetch-protocol", "maildir",
        "--incoming-folder", str(tmp_path / "Maildir"), "--delete-on-fetch",
    )  # fmt: skip
    Desk(app).route("support")

    report = fetch_reports(postroom_cli)["support"]

    assert (report["stored"], report["duplicates"], report["deleted"]) == (2, 1, 3)
    stored = _inbound(app)
    assert sorted(raw for _id, _ticket, raw in stored) == sorted([customer, forged])
    assert all(ticket is not None for _id, ticket, _raw in stored)
    assert len(folder) == 0


def test_a_message_stored_before_digests_existed_gets_one_on_its_first_collision(
    postroom_cli: Cli, app: Postroom, tmp_path: Path
) -> None:
    old = _form_mail("Stored by an older postroom.\r\n")
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    folder.add(old)
    postroom_cli.ok(
        "profile", "add", "support", "--fetch-protocol", "maildir",
        "--incoming-folder", str(tmp_path / "Maildir"), "--delete-on-fetch",
    )  # fmt: skip
    assert fetch_reports(postroom_cli)["support"]["stored"] == 1
    with app.transaction() as session:  # as the migration leaves rows stored before it
        session.execute(update(Message).values(content_digest=None))

    folder.add(old)
    folder.add(_form_mail("A new question.\r\n"))
    report = fetch_reports(postroom_cli)["support"]

    assert (report["stored"], report["duplicates"]) == (1, 1)
    with app.sessions() as session:
        digests = session.scalars(select(Message.content_digest).order_by(Message.id)).all()
        [duplicate_of] = session.scalars(
            select(FetchLedger.message_pk).where(FetchLedger.outcome == LedgerOutcome.DUPLICATE)
        ).all()
        first_pk = session.scalar(select(Message.id).order_by(Message.id).limit(1))
    assert duplicate_of == first_pk
    assert digests[0] == content_digest(old) and digests[1] is not None


def test_the_digest_ignores_what_delivery_adds_and_sees_every_change_the_author_made() -> None:
    mail = _form_mail("Order 4711.\r\n")
    relayed = b"Received: from relay.example by mx.example\r\nDelivered-To: support@acme.test\r\n" + mail
    refolded = mail.replace(b"Subject: Contact form", b"Subject: Contact\r\n\tform")
    assert content_digest(relayed) == content_digest(mail) == content_digest(refolded)
    assert content_digest(mail + b"\r\n") == content_digest(mail)
    assert content_digest(mail.replace(b"4711", b"4712")) != content_digest(mail)
    assert content_digest(mail.replace(b"Carla", b"Carlo")) != content_digest(mail)
    assert content_digest(mail.replace(b"MIME", b"X-Form-Order: 1\r\nMIME")) != content_digest(mail)
    assert content_digest(b"no header at all") != content_digest(b"")
