"""Hard versus soft, bounces of postroom's own replies in any format, and a vendor's reader (issue 14).

Each bounce is stored through the real inbound pipeline (the desk harness) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import Message, SMessageSendInfo, Ticket
from postroom.core.data.profiles import get_profile
from postroom.core.mail.bounces import read_bounce
from postroom.core.mail.parse import parse_mail
from postroom.core.plugin_host import PluginHost
from tests.bounces.corpus import CORPUS, configure_sender
from tests.support.desk import CUSTOMER, Desk

REPLY_ID = "postroom.41.7c1f@acme.test"


def _sent_reply(app: Postroom, ticket_id: int, message_id: str = REPLY_ID) -> int:
    """A reply postroom sent on the ticket, as the outbox leaves it; its outbox row's id."""
    with app.transaction() as session:
        sent = Message(contact_center_id=1, ticket_id=ticket_id, direction="outbound", status="outgoing",
                       message_id=message_id, subject="Re: [ACME] Where is my order 4711?")
        session.add(sent)
        session.flush()
        info = SMessageSendInfo(message_pk=sent.id, ticket_id=ticket_id, message_id=message_id, state="sent",
                                pending_recipients="[]")
        session.add(info)
        session.flush()
        return info.id


def _dsn(status: str, diagnostic: str, action: str = "failed") -> bytes:
    """A delivery report from a null sender about the reply ``REPLY_ID`` to the customer."""
    return (
        "From: Mail Delivery System <>\r\nTo: support@acme.test\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-{status}@mx.example.org>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {CUSTOMER}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.test\r\nTo: {CUSTOMER}\r\n"
        f"Message-ID: <{REPLY_ID}>\r\nSubject: Re: [ACME] Where is my order 4711?\r\n\r\n--B--\r\n"
    ).encode()


def _state(app: Postroom, ticket_id: int, info_id: int) -> tuple[Ticket, SMessageSendInfo, list[Message]]:
    with app.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        info = session.get(SMessageSendInfo, info_id)
        bounces = list(
            session.scalars(select(Message).where(Message.is_failure_mail.is_(True)).order_by(Message.id))
        )
        assert ticket is not None and info is not None
        session.expunge_all()
        return ticket, info, bounces


def test_a_soft_bounce_is_recorded_without_escalation_and_a_hard_one_escalates(app: Postroom) -> None:
    desk = Desk(app, ["case-id"]).setup()
    ticket_id = desk.ticket(_support(app))
    info_id = _sent_reply(app, ticket_id)

    desk.deliver(_dsn("4.2.2", f"452 4.2.2 <{CUSTOMER}>: Mailbox full"))
    ticket, info, bounces = _state(app, ticket_id, info_id)
    assert [b.ticket_id for b in bounces] == [ticket_id]  # recorded on the ticket of the reply
    assert "bounce-soft" in bounces[0].tags
    assert ticket.escalated is False
    assert info.bounced_at is None
    assert info.bounce_text is not None and info.bounce_text.startswith(
        f"Soft bounce: {CUSTOMER} (4.2.2, mailbox full, soft)"
    )

    desk.deliver(_dsn("5.1.1", f"550 5.1.1 <{CUSTOMER}>: User unknown"))
    ticket, info, bounces = _state(app, ticket_id, info_id)
    assert [b.ticket_id for b in bounces] == [ticket_id, ticket_id]
    assert "bounce-hard" in bounces[1].tags
    assert ticket.escalated is True
    assert info.bounced_at is not None
    assert info.bounce_text is not None and info.bounce_text.startswith(
        f"Bounced: {CUSTOMER} (5.1.1, unknown user, hard)"
    )


def _support(app: Postroom) -> int:
    with app.transaction() as session:
        return get_profile(session, "support", 1).id


def _plain_bounce(original_id: str, recipient: str = CUSTOMER) -> bytes:
    """Old sendmail's plain-text bounce from the null sender, quoting the returned mail's headers."""
    return (
        "Return-Path: <>\nFrom: MAILER-DAEMON <>\nTo: support@acme.test\n"
        f"Subject: Returned mail: User unknown\nMessage-Id: <v5-{original_id}>\n\n"
        "   ----- Transcript of session follows -----\n"
        f">>> RCPT To:<{recipient}>\n<<< 550 <{recipient}>... User unknown\n"
        f"550 <{recipient}>... User unknown\n\n"
        "   ----- Unsent message follows -----\n"
        "Received: by mail.acme.test (5.65/1.37) id 0000001; Mon, 30 Nov 2026 09:00:00 +0100\n"
        f"From: ACME Support <support@acme.test>\nTo: {recipient}\n"
        f"Subject: Re: [ACME] Where is my order 4711?\nMessage-ID: <{original_id}>\n\nYour parcel left today.\n"
    ).encode()


def test_a_plain_text_bounce_from_the_null_sender_marks_our_reply_bounced(app: Postroom) -> None:
    desk = Desk(app, ["case-id"]).setup()  # no customer resolver, no failure-mail address configured
    ticket_id = desk.ticket(_support(app))
    info_id = _sent_reply(app, ticket_id)

    stored = desk.deliver(_plain_bounce(REPLY_ID))
    assert stored.is_failure_mail and stored.ticket_id == ticket_id
    ticket, info, _ = _state(app, ticket_id, info_id)
    assert ticket.escalated is True
    assert info.bounced_at is not None
    with app.transaction() as session:
        assert session.scalars(select(Ticket.id)).all() == [ticket_id]  # no ticket for "MAILER-DAEMON"


def test_a_plain_text_bounce_of_somebody_elses_mail_is_ordinary_mail(app: Postroom) -> None:
    desk = Desk(app, ["case-id"]).setup()
    ticket_id = desk.ticket(_support(app))
    info_id = _sent_reply(app, ticket_id)

    stored = desk.deliver(_plain_bounce("not.ours.1@elsewhere.example"))
    assert stored.is_failure_mail is False and stored.ticket_id != ticket_id
    ticket, info, _ = _state(app, ticket_id, info_id)
    assert ticket.escalated is False and info.bounced_at is None


def _quillmail(original_id: str) -> bytes:
    return (
        "From: Quillmail Relay <relay@quill.example>\nTo: support@acme.test\nSubject: Notice\n"
        "Message-ID: <q-1@quill.example>\n\nQUILLMAIL NON-DELIVERY v2 (relay quill.example)\n"
        f"RCPT {CUSTOMER} RESULT 5.1.1 mailbox does not exist\nREF <{original_id}>\n"
    ).encode()


def test_an_external_plugin_reads_its_own_mta_format(app: Postroom) -> None:
    # tests/plugin_dist's entry point example-bounce-reader, installed by the test command.
    assert "example-bounce-reader" in {p.name for p in app.plugins.catalogue if p.enabled}
    without = PluginHost(disabled=["example-bounce-reader"])
    assert read_bounce(parse_mail(_quillmail(REPLY_ID)), without.read_bounce).recipients == []

    desk = Desk(app, ["case-id"]).setup()
    ticket_id = desk.ticket(_support(app))
    info_id = _sent_reply(app, ticket_id)
    reading = read_bounce(parse_mail(_quillmail(REPLY_ID)), app.plugins.read_bounce)
    assert [(n, r.format) for n, r in reading.verdicts] == [("example-bounce-reader", "quillmail")]
    assert reading.merged is not None and reading.merged.reporting_server == "quill.example"
    [recipient] = reading.recipients
    assert (recipient.address, recipient.status, recipient.reason, recipient.hard) == (
        CUSTOMER, "5.1.1", "unknown user", True
    )

    stored = desk.deliver(_quillmail(REPLY_ID))
    assert stored.is_failure_mail and stored.ticket_id == ticket_id
    ticket, info, _ = _state(app, ticket_id, info_id)
    assert ticket.escalated is True and info.bounced_at is not None


def test_a_bounce_naming_two_dead_addresses_escalates_both_customers_tickets(app: Postroom) -> None:
    desk = Desk(app, ["customer"]).setup()
    first = desk.ticket(_support(app), sender="Ann <ann@example.org>", subject="Refund")
    second = desk.ticket(_support(app), sender="Ben <ben@example.net>", subject="Invoice")
    bounce = (
        b"From: MAILER-DAEMON@mx.example.org\nTo: support@acme.test\nSubject: Returned mail: User unknown\n"
        b"Message-Id: <v5-two@mx.example.org>\n\n   ----- Transcript of session follows -----\n"
        b"550 <ann@example.org>... User unknown\n550 <ben@example.net>... User unknown\n\n"
        b"   ----- Unsent message follows -----\nSubject: Newsletter\n\nHello\n"
    )
    configure_sender(app, bounce)
    stored = desk.deliver(bounce)
    assert stored.is_failure_mail and stored.ticket_id == first
    with app.transaction() as session:
        assert [session.get(Ticket, t).escalated for t in (first, second)] == [True, True]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("file", "original_id", "where"),
    [
        ("interscan.eml", "00000000000.000000000000@e3.example.co.jp", "attached message/rfc822"),
        ("office365-text-html.eml", "FFFFFFFF.EEEEEEEE@example.ed.jp", "quoted original headers"),
        ("mfilter.eml", "000000000000@exmaple.jp", "quoted original message"),
        ("lotus-notes.eml", "000000000.0000000000000.notes@example.co.jp", "quoted returned message"),
    ],
)
def test_a_bounce_of_our_reply_in_any_format_is_tied_to_it_from_any_sender(
    app: Postroom, file: str, original_id: str, where: str
) -> None:
    # Real bounces of the corpus, their returned mail's Message-ID made that of our reply; no sender configured.
    raw = (CORPUS / file).read_bytes()
    assert original_id.encode() in raw, where
    desk = Desk(app, ["case-id"]).setup()
    ticket_id = desk.ticket(_support(app))
    info_id = _sent_reply(app, ticket_id)

    stored = desk.deliver(raw.replace(original_id.encode(), REPLY_ID.encode()))
    assert stored.is_failure_mail and stored.ticket_id == ticket_id, where
    ticket, info, _ = _state(app, ticket_id, info_id)
    assert ticket.escalated is True and info.bounced_at is not None, where
