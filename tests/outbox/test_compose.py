"""Composing a reply: the outgoing profile, headers, threading, signature, loop marks and header safety."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.contract.drafts import OutgoingDraft
from postroom.core.contract.errors import UserError
from postroom.core.contract.hooks import hookimpl
from postroom.core.data.models import MediaProfile, Message, SendState, Ticket
from postroom.core.data.profiles import set_signature
from postroom.core.data.tickets import close_ticket
from postroom.core.mail.build import build_message
from postroom.core.mail.parse import parse_mail
from postroom.core.outbound.compose import compose_reply, queue_reply
from postroom.plugins.auto_reply_filter import auto_reply_reason
from tests.outbox.helpers import NOW, outbox_rows, pending, queued_mail, text_and_html
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk

MAILDIR_SINK = {"send_protocol": "maildir", "outgoing_folder": "/tmp/postroom-outbox-test-sink"}


@pytest.fixture
def desk(app: Postroom) -> Desk:
    return Desk(app)


def _support(desk: Desk, **values: object) -> int:
    fields = {
        **MAILDIR_SINK,
        "send_from_name": "ACME Support",
        "send_from_address": "support@acme.test",
        "subject_prefix": "[ACME]",
        "reply_to": "help@acme.test",
        "username": "mailbox@acme.test",
        **values,
    }
    return desk.profile("support", **fields)


def _signature(app: Postroom, profile_id: int, html: str, position: str) -> None:
    with app.transaction() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        set_signature(profile, html, position)


def test_reply_has_the_profiles_sender_prefix_reply_to_threading_and_case_token(
    app: Postroom, desk: Desk, postroom_cli: Cli
) -> None:
    profile_id = _support(desk)
    ticket_id = desk.ticket(
        profile_id,
        subject="AW: [ACME] Where is my order 4711?",
        message_id="<first.mail@example.org>",
        references="<older.one@example.org> <older.two@acme.test>",
        to="Mailbox <mailbox@acme.test>, Bob Boss <boss@example.org>",
        cc="support@acme.test, Ola Observer <ola@example.org>",
    )
    queued = postroom_cli.ok(
        "ticket", "reply", str(ticket_id), "--body", "It is on its way.", "--json"
    ).json()

    mail = queued_mail(app, queued["outbox_id"])
    assert mail["From"] == "ACME Support <support@acme.test>"
    assert mail["Subject"] == f"Re: [ACME] Where is my order 4711? [#PR-{ticket_id}]"
    assert mail["Reply-To"] == "help@acme.test"
    assert mail["To"] == CUSTOMER
    # The customer's other recipients stay in copy; the profile's own addresses never do.
    assert [a.addr_spec for a in mail["Cc"].addresses] == ["boss@example.org", "ola@example.org"]
    assert mail["In-Reply-To"] == "<first.mail@example.org>"
    assert mail["References"].split() == [
        "<older.one@example.org>",
        "<older.two@acme.test>",
        "<first.mail@example.org>",
    ]
    assert mail["Message-ID"] == f"<{queued['message_id']}>"
    assert queued["message_id"].startswith(f"postroom.{ticket_id}.")
    assert queued["message_id"].endswith("@acme.test")
    assert mail["X-Postroom-Loop"] and mail["Auto-Submitted"] is None  # an agent's reply is not automatic
    text_part, html_part = text_and_html(mail)
    assert text_part.startswith("It is on its way.\n")
    assert "> my parcel has not arrived." in text_part
    assert "<div>It is on its way.</div>" in html_part and "<blockquote" in html_part

    [row] = outbox_rows(app)
    assert (row.state, row.attempts, row.media_profile_id) == (SendState.QUEUED, 0, profile_id)
    assert pending(row) == [CUSTOMER, "boss@example.org", "ola@example.org"]
    assert row.next_attempt_at is not None and row.envelope_from == "support@acme.test"

    shown = postroom_cli.ok("ticket", "show", str(ticket_id), "--json").json()
    outbound = [m for m in shown["messages"] if m["direction"] == "outbound"]
    assert [(m["from"], m["message_id"], m["profile"]) for m in outbound] == [
        ("support@acme.test", queued["message_id"], "support")
    ]


def test_a_customers_out_of_office_answer_is_not_the_mail_a_reply_answers(app: Postroom, desk: Desk) -> None:
    profile_id = _support(desk)
    ticket_id = desk.ticket(profile_id, message_id="<question@example.org>")
    first = queue_reply(app, 1, ticket_id, "We are on it.", now=NOW)
    out_of_office = desk.ticket(
        profile_id,
        subject=f"Automatic reply: {first.subject}",
        references=f"<{first.message_id}>",
        headers={"Auto-Submitted": "auto-replied"},
        body="I am out of the office until Monday.",
    )
    assert out_of_office == ticket_id
    second = queue_reply(app, 1, ticket_id, "Here is the tracking number.", now=NOW)
    mail = queued_mail(app, second.send_info_id)
    assert mail["In-Reply-To"] == "<question@example.org>"
    assert "out of the office" not in text_and_html(mail)[0]


def test_the_subject_prefix_and_case_token_are_never_doubled(app: Postroom, desk: Desk) -> None:
    profile_id = _support(desk)
    ticket_id = desk.ticket(profile_id, subject="Order 4711")
    subjects = []
    for _ in range(2):
        subjects.append(queue_reply(app, 1, ticket_id, "Thanks.", now=NOW).subject)
        # The customer answers the reply; the case-id resolver appends it to the same ticket.
        answer = desk.ticket(profile_id, subject=f"RE: Re: {subjects[-1]}")
        assert answer == ticket_id
    assert subjects == [f"Re: [ACME] Order 4711 [#PR-{ticket_id}]"] * 2


@pytest.mark.parametrize("position", ["before", "after"])
def test_signature_goes_before_or_after_the_quote_with_placeholders_filled_and_escaped(
    app: Postroom, desk: Desk, postroom_cli: Cli, position: str
) -> None:
    profile_id = _support(desk)
    _signature(
        app,
        profile_id,
        '<p>Kind regards, {agent_name}<br><a href="https://acme.test">ACME</a> for {customer_name}<br>'
        "Ticket {ticket_id} {case_token} in {campaign} via {profile_name} on {date}; {no_such_thing}</p>"
        "<script>alert(1)</script>",
        position,
    )
    postroom_cli.ok("agent", "add", "Alice <Ops>", "--email", "alice@acme.test")
    ticket_id = desk.ticket(profile_id, sender='"Dr. O\'Neil & <Sons>" <' + CUSTOMER + ">")
    queued = postroom_cli.ok(
        "ticket",
        "reply",
        str(ticket_id),
        "--body",
        "Done.",
        "--agent",
        "Alice <Ops>",
        "--now",
        NOW.isoformat(),
        "--json",
    ).json()

    text_part, html_part = text_and_html(queued_mail(app, queued["outbox_id"]))
    signature = (
        f"Kind regards, Alice <Ops>\nACME <https://acme.test> for Dr. O'Neil & <Sons>\n"
        f"Ticket {ticket_id} [#PR-{ticket_id}] in Support via support on 2031-03-04; {{no_such_thing}}"
    )
    assert signature in text_part
    assert (text_part.index(signature) < text_part.index("> Hello,")) == (position == "before")
    assert "Kind regards, Alice &lt;Ops&gt;" in html_part
    assert "for Dr. O&#x27;Neil &amp; &lt;Sons&gt;" in html_part
    assert "{no_such_thing}" in html_part and "<script>" not in html_part
    assert (html_part.index("postroom-signature") < html_part.index("<blockquote")) == (position == "before")


def test_a_compose_plugin_adjusts_the_draft_after_the_builtin_signature(
    app: Postroom, database_url: str
) -> None:
    class Footer:
        @hookimpl
        def postroom_compose_outgoing(
            self, draft: OutgoingDraft, ticket: Ticket, profile: MediaProfile
        ) -> None:
            draft.signature_text += "\nSent from postroom"
            draft.headers["X-Campaign"] = draft.campaign or ""

    plugged = Postroom(database_url, extra_plugins=[("footer", Footer())])
    try:
        desk = Desk(plugged)
        profile_id = _support(desk)
        _signature(plugged, profile_id, "<p>Regards</p>", "after")
        queued = queue_reply(plugged, 1, desk.ticket(profile_id), "Hi.", now=NOW)
        mail = queued_mail(plugged, queued.send_info_id)
    finally:
        plugged.dispose()
    assert mail["X-Campaign"] == "Support"
    assert text_and_html(mail)[0].rstrip().endswith("Regards\nSent from postroom")


def test_a_header_with_a_line_break_is_refused_and_nothing_is_queued(
    app: Postroom, database_url: str
) -> None:
    class Injector:
        @hookimpl
        def postroom_compose_outgoing(
            self, draft: OutgoingDraft, ticket: Ticket, profile: MediaProfile
        ) -> None:
            draft.headers["X-Note"] = "fine\r\nBcc: victim@example.net"

    plugged = Postroom(database_url, extra_plugins=[("injector", Injector())])
    try:
        desk = Desk(plugged)
        ticket_id = desk.ticket(_support(desk))
        with pytest.raises(UserError, match="X-Note header contains a line break"):
            queue_reply(plugged, 1, ticket_id, "Hi.", now=NOW)
    finally:
        plugged.dispose()
    assert outbox_rows(app) == []


def test_line_breaks_in_a_tickets_subject_are_folded_never_passed_through(app: Postroom, desk: Desk) -> None:
    ticket_id = desk.ticket(_support(desk))
    with app.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.subject = "Hello\r\nBcc: victim@example.net"  # however it got there, it must not get out
    queued = queue_reply(app, 1, ticket_id, "Hi.", now=NOW)
    mail = queued_mail(app, queued.send_info_id)
    assert mail["Bcc"] is None
    assert mail["Subject"] == f"Re: [ACME] Hello Bcc: victim@example.net [#PR-{ticket_id}]"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("to", ["carla@example.org\r\nBcc: victim@example.net"], "To address contains a line break"),
        ("reply_to", "help@acme.test\nX-Evil: 1", "Reply-To address contains a line break"),
        ("from_name", "ACME\r\nBcc: victim@example.net", None),
        ("subject", "Hello\r\nBcc: victim@example.net", None),
    ],
)
def test_addresses_with_line_breaks_are_refused_and_free_text_is_folded(
    field: str, value: object, message: str | None
) -> None:
    draft = OutgoingDraft(
        ticket_id=1,
        profile_id=1,
        from_name="ACME",
        from_address="support@acme.test",
        to=["carla@example.org"],
        cc=[],
        subject="Hello",
        text="Hi.",
        html="Hi.",
        message_id="postroom.1.x@acme.test",
    )
    setattr(draft, field, value)
    if message is not None:
        with pytest.raises(UserError, match=message):
            build_message(draft)
        return
    raw = build_message(draft).as_bytes()
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers
    assert b"victim@example.net" in headers  # folded onto the header's own line


def test_automatic_mail_is_marked_auto_submitted_and_every_mail_reads_as_ours(
    app: Postroom, desk: Desk
) -> None:
    ticket_id = desk.ticket(_support(desk))
    agent_reply = queue_reply(app, 1, ticket_id, "Hi.", now=NOW)
    with app.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        automatic = compose_reply(session, app.plugins, ticket, "We got your mail.", now=NOW, automatic=True)
    auto_mail = queued_mail(app, automatic.send_info_id)
    assert auto_mail["Auto-Submitted"] == "auto-replied"
    assert queued_mail(app, agent_reply.send_info_id)["Auto-Submitted"] is None
    # Should either come back in, postroom's own inbound filter never lets it trigger automatic mail.
    for queued in (agent_reply, automatic):
        assert auto_reply_reason(parse_mail(queued_mail(app, queued.send_info_id).as_bytes())) is not None


def test_reply_queued_is_signalled_after_the_commit(app: Postroom, desk: Desk) -> None:
    ticket_id = desk.ticket(_support(desk))
    seen: list[dict[str, object]] = []

    def receiver(sender: object, **kwargs: object) -> None:
        with app.transaction() as session:  # a new session sees the committed rows
            kwargs["stored"] = session.scalar(
                select(Message.id).where(Message.message_id == kwargs["message_id"])
            )
        seen.append(kwargs)

    events.reply_queued.connect(receiver)
    try:
        queued = queue_reply(app, 1, ticket_id, "Hi.", now=NOW)
    finally:
        events.reply_queued.disconnect(receiver)
    assert seen == [
        {
            "send_info_id": queued.send_info_id,
            "ticket_id": ticket_id,
            "profile_id": queued.profile_id,
            "message_id": queued.message_id,
            "stored": queued.message_pk,
        }
    ]


def test_seed_sql_media_profile_mapping_sends_replies_through_the_mapped_profile(
    app: Postroom, desk: Desk
) -> None:
    incoming = desk.profile("m1", **MAILDIR_SINK, send_from_address="m1@acme.test", subject_prefix="[M1]")
    outgoing = desk.profile("m2", **MAILDIR_SINK, send_from_name="M2 Desk", send_from_address="m2@acme.test")
    ticket_id = desk.ticket(incoming)
    with app.engine.begin() as connection:
        connection.execute(
            text(
                "insert into ic_configuration_parameter (contact_center_id, name, value) "
                f"values (1, 'mediaProfileMapping', '{{\"{incoming}\":\"{outgoing}\"}}');"
            )
        )
    queued = queue_reply(app, 1, ticket_id, "Hi.", now=NOW)
    assert (queued.profile_id, queued.profile_name) == (outgoing, "m2")
    assert queued_mail(app, queued.send_info_id)["From"] == "M2 Desk <m2@acme.test>"


def test_a_reply_is_due_at_once_and_replies_to_closed_tickets_are_allowed(app: Postroom, desk: Desk) -> None:
    ticket_id = desk.ticket(_support(desk))
    with app.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        close_ticket(session, ticket)
    queue_reply(app, 1, ticket_id, "One more thing.", now=NOW)
    [row] = outbox_rows(app)
    assert row.next_attempt_at == NOW and row.state == SendState.QUEUED
    assert row.next_attempt_at < NOW + timedelta(seconds=1)


def test_user_mistakes_are_one_sentence(
    app: Postroom, desk: Desk, postroom_cli: Cli, tmp_path: object
) -> None:
    receive_only = desk.profile("inbox", send_from_address="inbox@acme.test")
    ticket_id = desk.ticket(receive_only)
    cases = [
        (["ticket", "reply", str(ticket_id), "--body", "Hi."], "does not allow outgoing mail"),
        (["ticket", "reply", "999", "--body", "Hi."], "There is no ticket 999"),
        (["ticket", "reply", str(ticket_id)], "exactly one of --body or --body-file"),
        (["ticket", "reply", str(ticket_id), "--body", "x", "--body-file", "f"], "exactly one of --body"),
        (["ticket", "reply", str(ticket_id), "--body-file", "/nonexistent/reply.txt"], "cannot be read"),
        (
            ["ticket", "reply", str(ticket_id), "--body", "Hi.", "--agent", "nobody"],
            "no agent named 'nobody'",
        ),
        (["ticket", "reply", str(ticket_id), "--body", "   "], None),
    ]
    for args, message in cases:
        result = postroom_cli.run(*args)
        assert result.exit_code != 0, args
        assert "Traceback" not in result.stderr
        if message:
            assert message in result.stderr, (args, result.stderr)
    assert outbox_rows(app) == []


def test_body_file_is_read(app: Postroom, desk: Desk, postroom_cli: Cli, tmp_path: object) -> None:
    from pathlib import Path

    body = Path(str(tmp_path)) / "reply.txt"
    body.write_text("From a file.\nSecond line.\n")
    ticket_id = desk.ticket(_support(desk))
    queued = postroom_cli.ok("ticket", "reply", str(ticket_id), "--body-file", str(body), "--json").json()
    assert text_and_html(queued_mail(app, queued["outbox_id"]))[0].startswith("From a file.\nSecond line.\n")
