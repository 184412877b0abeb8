"""Replies sent by ``postroom send`` to real aiosmtpd servers, with the sent copy in a real Dovecot folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from postroom import hookimpl
from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile, SendState
from postroom.core.data.profiles import set_signature
from postroom.core.outbound import claims
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import Outbox
from tests.outbox.helpers import NOW, dovecot_user, outbox_rows, parse, text_and_html
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SMTP_ACCESS_TOKEN, SMTP_USERNAME, ServerName, SmtpScript, SmtpServers
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk

pytestmark = pytest.mark.usefixtures("smtp_script")

SIGNATURE = "<p>Best regards, {agent_name}<br>{profile_name} team, ticket {ticket_id} {case_token}</p>"


@pytest.fixture
def desk(app: Postroom) -> Desk:
    return Desk(app)


@pytest.mark.parametrize(("server", "position"), [("starttls", "before"), ("smtps", "after")])
def test_reply_reaches_the_server_with_every_header_and_a_copy_lands_in_the_sent_folder(
    app: Postroom,
    desk: Desk,
    postroom_cli: Cli,
    smtp_servers: SmtpServers,
    dovecot: Dovecot,
    server: ServerName,
    position: str,
) -> None:
    endpoint = getattr(smtp_servers, server)
    mailbox_user = dovecot_user(dovecot)
    profile_id = desk.smtp_profile(
        "support",
        endpoint,
        send_from_name="ACME Support",
        send_from_address="support@acme.test",
        subject_prefix="[ACME]",
        reply_to="help@acme.test",
        fetch_protocol="imap",
        incoming_host=dovecot.host,
        incoming_port=dovecot.imap_port,
        outgoing_folder="Sent",
    )
    with app.transaction() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        set_signature(profile, SIGNATURE, position)
    postroom_cli.ok("agent", "add", "Alice")
    ticket_id = desk.ticket(
        profile_id, subject="Order 4711", message_id="<order.4711@example.org>", to="support@acme.test"
    )
    queued = postroom_cli.ok(
        "ticket", "reply", str(ticket_id), "--body", "It ships today.", "--agent", "Alice", "--json"
    ).json()

    result = postroom_cli.ok("send", "--now", NOW.isoformat())

    assert result.stdout.strip() == "Sent 1, retry scheduled 0, failed 0."
    [received] = smtp_servers.received(server)
    assert (received.tls, received.login) == (True, SMTP_USERNAME)
    assert (received.envelope_from, received.recipients) == ("support@acme.test", (CUSTOMER,))
    mail = received.message()
    assert mail["From"] == "ACME Support <support@acme.test>"
    assert mail["Subject"] == f"Re: [ACME] Order 4711 [#PR-{ticket_id}]"
    assert mail["Reply-To"] == "help@acme.test"
    assert (mail["In-Reply-To"], mail["References"]) == ("<order.4711@example.org>",) * 2
    assert mail["Message-ID"] == f"<{queued['message_id']}>"
    body, html = text_and_html(mail)
    signature = f"Best regards, Alice\nsupport team, ticket {ticket_id} [#PR-{ticket_id}]"
    assert (body.index(signature) < body.index("> Hello,")) == (position == "before")
    assert (html.index("Best regards, Alice") < html.index("<blockquote")) == (position == "before")

    copies = [parse(raw) for raw in dovecot.fetch_all(mailbox_user, "Sent")]
    assert mail["Message-ID"] in [copy["Message-ID"] for copy in copies]
    [row] = outbox_rows(app)
    assert (row.state, row.attempts, row.sent_at) == (SendState.SENT, 1, NOW)


def test_all_due_replies_of_a_profile_share_one_connection(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    profile_id = desk.smtp_profile("support", smtp_servers.starttls)
    for number in range(3):
        queue_reply(app, 1, desk.ticket(profile_id, subject=f"Question {number}"), "Answer.", now=NOW)

    report = Outbox(app).send_due(NOW)

    assert (report.claimed, report.sent) == (3, 3)
    assert len(smtp_servers.received("starttls")) == 3
    assert smtp_servers.connections("starttls") == 1
    assert len({mail.peer for mail in smtp_servers.received("starttls")}) == 1


def test_a_stopping_sender_finishes_the_batch_in_hand_and_leaves_the_rest_queued(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    profile_id = desk.smtp_profile("support", smtp_servers.starttls)
    ticket_id = desk.ticket(profile_id)
    for number in range(5):
        queue_reply(app, 1, ticket_id, f"Answer {number}.", now=NOW)
    batches: list[int] = []

    def stop_after_the_first_batch() -> bool:
        batches.append(len(smtp_servers.received("starttls")))
        return len(batches) > 1

    report = Outbox(app, batch_size=2, should_stop=stop_after_the_first_batch).send_due(NOW)

    assert (report.claimed, report.sent) == (2, 2) and batches == [0, 2]
    states = sorted(row.state for row in outbox_rows(app))
    assert states == sorted([SendState.SENT] * 2 + [SendState.QUEUED] * 3)


def test_seed_mapping_sends_an_m1_tickets_reply_through_m2s_server_and_from(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    m1 = desk.smtp_profile(
        "m1", smtp_servers.starttls, send_from_name="M1 Desk", send_from_address="m1@acme.test"
    )
    m2 = desk.smtp_profile(
        "m2", smtp_servers.smtps, send_from_name="M2 Desk", send_from_address="m2@acme.test"
    )
    ticket_id = desk.ticket(m1, to="m1@acme.test")
    with app.engine.begin() as connection:
        connection.execute(
            text(
                "insert into ic_configuration_parameter (contact_center_id, name, value) "
                f"values (1, 'mediaProfileMapping', '{{\"{m1}\":\"{m2}\"}}');"
            )
        )

    queue_reply(app, 1, ticket_id, "Answered through M2.", now=NOW)
    Outbox(app).send_due(NOW)

    assert smtp_servers.received("starttls") == []
    [received] = smtp_servers.received("smtps")
    assert received.envelope_from == "m2@acme.test"
    assert received.message()["From"] == "M2 Desk <m2@acme.test>"
    [row] = outbox_rows(app)
    assert (row.media_profile_id, row.state) == (m2, SendState.SENT)


def test_a_sent_copy_that_cannot_be_stored_leaves_the_mail_sent(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers, refused_port: int
) -> None:
    profile_id = desk.smtp_profile(
        "support",
        smtp_servers.plain,
        fetch_protocol="imap",
        incoming_host="127.0.0.1",
        incoming_port=refused_port,
        outgoing_folder="Sent",
    )
    queue_reply(app, 1, desk.ticket(profile_id), "Hi.", now=NOW)
    queue_reply(app, 1, desk.ticket(profile_id, subject="Other"), "Hi.", now=NOW)

    report = Outbox(app).send_due(NOW)

    assert (report.sent, report.failed, report.copy_errors) == (2, 0, 2)
    assert [row.state for row in outbox_rows(app)] == [SendState.SENT, SendState.SENT]
    assert len(smtp_servers.received("plain")) == 2


def test_maildir_send_protocol_writes_the_mail_and_keeps_it_as_the_copy(
    app: Postroom, desk: Desk, tmp_path: Path
) -> None:
    sink = tmp_path / "sent"
    profile_id = desk.profile("demo", send_protocol="maildir", outgoing_folder=str(sink))
    queued = queue_reply(app, 1, desk.ticket(profile_id), "Hi.", now=NOW)

    report = Outbox(app).send_due(NOW)

    assert (report.sent, report.copy_errors) == (1, 0)
    [written] = list((sink / "new").iterdir())
    assert parse(written.read_bytes())["Message-ID"] == f"<{queued.message_id}>"


def test_a_reply_is_sent_once_and_not_again(app: Postroom, desk: Desk, smtp_servers: SmtpServers) -> None:
    profile_id = desk.smtp_profile("support", smtp_servers.plain)
    queue_reply(app, 1, desk.ticket(profile_id), "Hi.", now=NOW)
    assert Outbox(app).send_due(NOW).sent == 1
    assert Outbox(app).send_due(NOW).claimed == 0
    assert len(smtp_servers.received("plain")) == 1


def test_outbox_and_failures_lists_show_the_documented_keys(
    app: Postroom, desk: Desk, postroom_cli: Cli, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    profile_id = desk.smtp_profile("support", smtp_servers.plain)
    ticket_id = desk.ticket(profile_id, cc="ola@example.org")
    smtp_script.refuse_recipient("ola@example.org", "452 4.2.2 Mailbox full")
    queued = queue_reply(app, 1, ticket_id, "Hi.", now=NOW)
    postroom_cli.ok("send", "--now", NOW.isoformat())

    [entry] = postroom_cli.ok("outbox", "list", "--json").json()
    assert {
        "id",
        "ticket_id",
        "profile",
        "message_id",
        "to",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
    } <= set(entry)
    assert entry["id"] == queued.send_info_id and entry["ticket_id"] == ticket_id
    assert (entry["profile"], entry["message_id"], entry["to"]) == (
        "support",
        queued.message_id,
        [CUSTOMER, "ola@example.org"],
    )
    assert (entry["state"], entry["attempts"], entry["pending"]) == (
        "retry-scheduled",
        1,
        ["ola@example.org"],
    )
    assert entry["next_attempt_at"] == "2031-03-04T10:05:00+00:00"
    assert entry["last_error"] == "ola@example.org: 452 4.2.2 Mailbox full"

    [failure] = postroom_cli.ok("failures", "list", "--json").json()
    assert {k: failure[k] for k in failure if k not in ("id", "created_at")} == {
        "outbox_id": queued.send_info_id,
        "attempt": 1,
        "recipient": "ola@example.org",
        "reply_code": 452,
        "enhanced_code": "4.2.2",
        "text": "4.2.2 Mailbox full",
        "category": "mailbox error",
        "policy": "progressive retry",
        "next_attempt_at": "2031-03-04T10:05:00+00:00",
    }
    assert postroom_cli.ok("outbox", "list", "--state", "sent", "--json").json() == []
    table = postroom_cli.ok("failures", "list").stdout
    assert "mailbox error" in table and "4.2.2" in table


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_a_token_plugin_lets_a_profile_without_password_send_with_xoauth2(
    app: Postroom, database_url: str, smtp_servers: SmtpServers, server: ServerName
) -> None:
    asked: list[str] = []

    class TokenProvider:
        @hookimpl
        def postroom_get_access_token(self, profile: MediaProfile) -> str | None:
            asked.append(profile.name)
            return SMTP_ACCESS_TOKEN if profile.name == "m365" else None

    plugged = Postroom(database_url, extra_plugins=[("token-provider", TokenProvider())])
    try:
        desk = Desk(plugged)
        endpoint = getattr(smtp_servers, server)
        profile_id = desk.profile(
            "m365",
            send_protocol=endpoint.protocol,
            outgoing_host=endpoint.host,
            outgoing_port=endpoint.port,
            username=SMTP_USERNAME,
        )
        queue_reply(plugged, 1, desk.ticket(profile_id), "Sent with a token.", now=NOW)
        report = Outbox(plugged).send_due(NOW)
    finally:
        plugged.dispose()

    assert report.sent == 1 and "m365" in asked
    [received] = smtp_servers.received(server)
    assert (received.login, received.tls) == (SMTP_USERNAME, True)


def test_a_reply_with_attachments_reaches_the_server_with_every_file_intact(
    app: Postroom, desk: Desk, postroom_cli: Cli, smtp_servers: SmtpServers, tmp_path: Path
) -> None:
    invoice = tmp_path / "invoice-4711.pdf"
    invoice.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 64)
    notes = tmp_path / "Rücksendeschein für Sie.txt"
    notes.write_text("Bitte beilegen.\n", encoding="utf-8")
    ticket_id = desk.ticket(desk.smtp_profile("support", smtp_servers.starttls))

    queued = postroom_cli.ok(
        "ticket",
        "reply",
        str(ticket_id),
        "--body",
        "Attached.",
        "--attach",
        str(invoice),
        "--attach",
        str(notes),
        "--json",
    ).json()
    postroom_cli.ok("send", "--now", NOW.isoformat())

    [received] = smtp_servers.received("starttls")
    mail = received.message()
    assert mail.get_content_type() == "multipart/mixed"
    body = mail.get_body(("plain",))
    assert body is not None and body.get_content().startswith("Attached.")
    files = {
        part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
        for part in mail.iter_attachments()
    }
    assert files == {
        "invoice-4711.pdf": ("application/pdf", invoice.read_bytes()),
        "Rücksendeschein für Sie.txt": ("text/plain", notes.read_bytes()),
    }
    shown = postroom_cli.ok("ticket", "show", str(ticket_id), "--json").json()["messages"]
    [sent] = [m for m in shown if m["id"] == queued["message_pk"]]
    assert [(a["name"], a["content_type"], a["size"]) for a in sent["attachments"]] == [
        ("invoice-4711.pdf", "application/pdf", invoice.stat().st_size),
        ("Rücksendeschein für Sie.txt", "text/plain", notes.stat().st_size),
    ]
    assert (
        "invoice-4711.pdf, Rücksendeschein für Sie.txt"
        in postroom_cli.ok("ticket", "show", str(ticket_id)).stdout
    )


def test_an_attachment_that_cannot_be_read_queues_nothing(
    app: Postroom, desk: Desk, postroom_cli: Cli, smtp_servers: SmtpServers, tmp_path: Path
) -> None:
    ticket_id = desk.ticket(desk.smtp_profile("support", smtp_servers.starttls))
    refused = postroom_cli.run(
        "ticket", "reply", str(ticket_id), "--body", "Hi.", "--attach", str(tmp_path / "gone.pdf")
    )
    assert refused.exit_code == 1
    assert refused.stderr.strip().endswith(
        f"The attachment {str(tmp_path / 'gone.pdf')!r} cannot be read: No such file or directory."
    )
    assert outbox_rows(app) == []


def test_big_queued_mails_are_read_a_few_at_a_time(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket_id = desk.ticket(desk.smtp_profile("support", smtp_servers.starttls))
    for number in range(5):
        queue_reply(app, 1, ticket_id, f"Answer {number}.", now=NOW)
    chunks: list[int] = []
    real = claims.load_raws

    def spy(connection: Connection, message_pks: Sequence[int]) -> dict[int, bytes]:
        chunks.append(len(message_pks))
        return real(connection, message_pks)

    real_chunk = claims.RAW_CHUNK_BYTES
    monkeypatch.setattr(claims, "RAW_CHUNK_BYTES", 1)  # every mail is "big"
    monkeypatch.setattr(claims, "load_raws", spy)
    assert Outbox(app).send_due(NOW).sent == 5
    assert chunks == [1, 1, 1, 1, 1]
    assert len(smtp_servers.received("starttls")) == 5

    monkeypatch.setattr(claims, "RAW_CHUNK_BYTES", real_chunk)
    for number in range(5):
        queue_reply(app, 1, ticket_id, f"Again {number}.", now=NOW)
    chunks.clear()
    assert Outbox(app).send_due(NOW).sent == 5
    assert chunks == [5]  # ordinary replies: one query for the batch
