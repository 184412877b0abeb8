"""Bounces from configured failure-mail addresses: real bounces from flufl.bounce's corpus, fetched from a Maildir."""

from __future__ import annotations

import mailbox
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from postroom.core.app import Postroom
from postroom.core.data import configuration, directory, tickets
from postroom.core.data.models import CustomerEmail, Message, MessageRaw, SMessageSendInfo, Ticket
from postroom.core.mail.parse import parse_mail
from tests.servers.bounce_corpus import KnownBounce
from tests.support.cli import Cli
from tests.support.mail import make_mail


def _maildir_profile(cli: Cli, folder: Path, resolvers: list[str]) -> None:
    mailbox.Maildir(folder, create=True)
    cli.ok(
        "profile",
        "add",
        "support",
        "--fetch-protocol",
        "maildir",
        "--incoming-folder",
        str(folder),
        *[arg for name in resolvers for arg in ("--resolver", name)],
    )
    cli.ok("campaign", "add", "Support")
    cli.ok("queue", "add", "Support", "First line")
    cli.ok("rule", "add", "--profile", "support", "--campaign", "Support", "--queue", "First line")


def _customer_with_open_ticket(app: Postroom, address: str) -> int:
    with app.transaction() as session:
        customer = directory.find_customer_by_address(session, 1, address) or directory.add_customer(
            session, 1, address, [address]
        )
        existing = tickets.latest_open_ticket_for_customer(session, 1, customer.id)
        if existing is not None:
            return existing.id
        return tickets.create_ticket(
            session,
            contact_center_id=1,
            campaign_id=1,
            queue_id=1,
            customer_id=customer.id,
            profile=None,
            subject=f"Question from {address}",
        ).id


@pytest.mark.parametrize(("resolver", "appends"), [("customer", True), ("case-id", False)])
def test_every_known_bounce_escalates_the_customers_ticket(
    app: Postroom,
    postroom_cli: Cli,
    flufl_bounces: list[KnownBounce],
    tmp_path: Path,
    resolver: str,
    appends: bool,
) -> None:
    folder = tmp_path / "inbox"
    _maildir_profile(postroom_cli, folder, [resolver])
    box = mailbox.Maildir(folder)
    expected_tickets: dict[bytes, set[int]] = {}
    senders: set[str] = set()
    message_ids: set[str | None] = set()
    without_sender = []
    for bounce in flufl_bounces:
        raw = bounce.path.read_bytes()
        parsed = parse_mail(raw)
        if not parsed.from_address:
            # "From: Mail Delivery System <>": no address an operator could configure.
            without_sender.append(bounce.path.name)
            continue
        if parsed.message_id in message_ids and parsed.message_id is not None:
            continue  # the same bounce twice in the corpus would be a duplicate, correctly not stored again
        message_ids.add(parsed.message_id)
        senders.add(parsed.from_address)
        expected_tickets[raw] = {_customer_with_open_ticket(app, address) for address in bounce.permanent}
        box.add(raw)
    with app.transaction() as session:
        for sender in sorted(senders):
            configuration.add_value(session, 1, "failureMailConfiguration", sender)
    assert without_sender == ["simple_31.txt"]
    postroom_cli.ok("fetch")
    with app.transaction() as session:
        rows = session.execute(select(Message, MessageRaw.raw).join(MessageRaw)).all()
        assert len(rows) == len(expected_tickets)
        for message, raw in rows:
            assert message.is_failure_mail, f"not recognised as failure mail: {message.subject!r}"
            ticket = session.get(Ticket, message.ticket_id)
            assert ticket is not None and ticket.escalated
            if appends:
                assert ticket.id in expected_tickets[raw], (
                    f"bounce {message.subject!r} went to the wrong ticket"
                )
            else:
                assert not any(ticket.id in ids for ids in expected_tickets.values())
                assert ticket.customer_id is not None


def test_seed_sql_in_psql_configures_failure_mail(
    pg_database_url: str, tmp_path: Path, flufl_bounces: list[KnownBounce]
) -> None:
    cli = Cli(pg_database_url)
    folder = tmp_path / "inbox"
    _maildir_profile(cli, folder, ["customer"])
    bounce = next(b for b in flufl_bounces if b.path.name == "postfix_01.txt")
    sender = parse_mail(bounce.path.read_bytes()).from_address
    url = make_url(pg_database_url)
    subprocess.run(
        [
            "psql",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "-d",
            url.database or "",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "insert into ic_configuration_parameter (contact_center_id, name, value) values "
            f"(1, 'failureMailConfiguration', '{sender}');",
        ],
        check=True,
        capture_output=True,
    )
    app = Postroom(pg_database_url)
    ticket_id = _customer_with_open_ticket(app, bounce.permanent[0])
    mailbox.Maildir(folder).add(bounce.path.read_bytes())
    cli.ok("fetch")
    shown = cli.ok("ticket", "show", str(ticket_id), "--json").json()
    assert shown["escalated"] is True
    assert [m["is_failure_mail"] for m in shown["messages"]] == [True]
    app.dispose()


def _sent_reply(app: Postroom, ticket_id: int, message_id: str) -> None:
    """A reply postroom sent on the ticket, as the outbox leaves it."""
    with app.transaction() as session:
        sent = Message(
            contact_center_id=1,
            ticket_id=ticket_id,
            direction="outbound",
            status="outgoing",
            message_id=message_id,
            subject="Re: hello",
        )
        session.add(sent)
        session.flush()
        session.add(
            SMessageSendInfo(
                message_pk=sent.id,
                ticket_id=ticket_id,
                message_id=message_id,
                state="sent",
                pending_recipients="[]",
            )
        )


def _dsn(sender: str, recipient: str, original_id: str, action: str = "failed") -> bytes:
    """A delivery status notification (RFC 3464) about the mail ``original_id``."""
    status = "5.1.1" if action == "failed" else "4.4.7"
    return (
        f"From: {sender}\r\nTo: support@acme.test\r\nSubject: Delivery Status Notification ({action})\r\n"
        f"Message-ID: <dsn-{action}-{original_id}>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nAbout your message.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.test\r\nTo: {recipient}\r\n"
        f"Message-ID: <{original_id}>\r\nSubject: Re: hello\r\n\r\n--B--\r\n"
    ).encode()


def test_a_bounce_of_a_mail_postroom_sent_is_recorded_on_its_send_info(
    app: Postroom, postroom_cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    _maildir_profile(postroom_cli, folder, ["customer"])
    ticket_id = _customer_with_open_ticket(app, "gone@example.test")
    with app.transaction() as session:
        configuration.add_value(session, 1, "failureMailConfiguration", "MAILER-DAEMON@mx.example.test")
    _sent_reply(app, ticket_id, "postroom.1.abc@acme.test")
    mailbox.Maildir(folder).add(
        _dsn("MAILER-DAEMON@mx.example.test", "gone@example.test", "postroom.1.abc@acme.test")
    )
    postroom_cli.ok("fetch")
    with app.transaction() as session:
        info = session.scalar(select(SMessageSendInfo))
        assert info is not None and info.bounced_at is not None
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.escalated


def test_a_failure_report_about_our_own_mail_is_a_bounce_from_any_sender(
    app: Postroom, postroom_cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    _maildir_profile(postroom_cli, folder, ["customer"])
    ticket_id = _customer_with_open_ticket(app, "gone@example.test")
    _sent_reply(app, ticket_id, "postroom.2.abc@acme.test")  # no failureMailConfiguration at all
    box = mailbox.Maildir(folder)
    box.add(_dsn("postmaster@relay.example.net", "gone@example.test", "postroom.2.abc@acme.test"))
    postroom_cli.ok("fetch")

    shown = postroom_cli.ok("ticket", "show", str(ticket_id), "--json").json()
    assert shown["escalated"] is True
    assert [m["is_failure_mail"] for m in shown["messages"] if m["direction"] == "inbound"] == [True]
    assert directory_addresses(app) == ["gone@example.test"]  # no customer "postmaster"
    with app.sessions() as session:
        info = session.scalar(select(SMessageSendInfo))
        assert info is not None and info.bounced_at is not None


@pytest.mark.parametrize(
    ("original_id", "action"),
    [("somebody.else@other.example", "failed"), ("postroom.3.abc@acme.test", "delayed")],
)
def test_a_report_about_someone_elses_mail_or_only_a_delay_is_ordinary_mail(
    app: Postroom, postroom_cli: Cli, tmp_path: Path, original_id: str, action: str
) -> None:
    folder = tmp_path / "inbox"
    _maildir_profile(postroom_cli, folder, ["customer"])
    ticket_id = _customer_with_open_ticket(app, "gone@example.test")
    _sent_reply(app, ticket_id, "postroom.3.abc@acme.test")
    mailbox.Maildir(folder).add(
        _dsn("postmaster@relay.example.net", "gone@example.test", original_id, action)
    )
    postroom_cli.ok("fetch")

    assert postroom_cli.ok("ticket", "show", str(ticket_id), "--json").json()["escalated"] is False
    with app.sessions() as session:
        stored = session.scalar(select(Message).where(Message.direction == "inbound"))
        assert stored is not None and stored.is_failure_mail is False
        info = session.scalar(select(SMessageSendInfo))
        assert info is not None and info.bounced_at is None


def directory_addresses(app: Postroom) -> list[str]:
    with app.sessions() as session:
        return sorted(session.scalars(select(CustomerEmail.address)))


def test_auto_reply_is_stored_on_its_ticket_marked_and_answers_nothing(
    app: Postroom, postroom_cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    _maildir_profile(postroom_cli, folder, ["customer"])
    box = mailbox.Maildir(folder)
    box.add(make_mail("Order 1234", sender="bob@a.test"))
    postroom_cli.ok("fetch")
    for headers in (
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "bulk"},
        {"X-Auto-Response-Suppress": "All"},
    ):
        box.add(make_mail("Out of office: Order 1234", sender="bob@a.test", headers=headers))
    box.add(make_mail("Not automatic", sender="bob@a.test", headers={"Auto-Submitted": "no"}))
    postroom_cli.ok("fetch")
    [ticket] = postroom_cli.ok("ticket", "list", "--json").json()
    messages = postroom_cli.ok("ticket", "show", str(ticket["id"]), "--json").json()["messages"]
    assert [m["is_auto_reply"] for m in messages] == [False, True, True, True, True, False]
    assert all("auto-reply" in m["tags"] for m in messages[1:5])
    # Nothing automatic was sent in answer: no outgoing message exists.
    with app.transaction() as session:
        assert session.scalar(select(SMessageSendInfo)) is None
