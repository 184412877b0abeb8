"""Whom a reply goes to: addresses kept whole (a comma inside quotes, internationalised ones), unusable
ones skipped and named, ``ticket reply --to/--cc``, and rows stored before addresses were JSON lists.

Replies go through ``postroom send`` to a real aiosmtpd that offers SMTPUTF8.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import update

from postroom.core.app import Postroom
from postroom.core.data.models import Message
from postroom.core.mail.addresses import address_problem
from postroom.core.mail.decoding import parse_addresses
from tests.outbox.helpers import NOW, outbox_rows, parse
from tests.servers.smtp import SmtpEndpoint, free_port
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, CUSTOMER_MAIL, Desk
from tests.support.mail import make_mail


class Utf8Server:
    """An aiosmtpd that takes SMTPUTF8 and keeps each mail's envelope recipients and bytes."""

    def __init__(self) -> None:
        self.endpoint = SmtpEndpoint("plain", "127.0.0.1", free_port(), "smtp")
        self._lock = threading.Lock()
        self._mails: list[tuple[tuple[str, ...], bytes]] = []
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.endpoint.port, enable_SMTPUTF8=True, ready_timeout=15.0
        )

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self._mails.append((tuple(envelope.rcpt_tos), bytes(envelope.original_content or b"")))
        return "250 2.0.0 OK"

    def take(self) -> list[tuple[tuple[str, ...], EmailMessage]]:
        """The mails received since the last call: (envelope recipients, parsed mail)."""
        with self._lock:
            mails, self._mails = self._mails, []
        return [(recipients, parse(raw)) for recipients, raw in mails]


@pytest.fixture(scope="module")
def utf8_server() -> Iterator[Utf8Server]:
    server = Utf8Server()
    server._controller.start()
    try:
        yield server
    finally:
        server._controller.stop()


@pytest.fixture
def server(utf8_server: Utf8Server) -> Utf8Server:
    utf8_server.take()
    return utf8_server


@pytest.fixture
def profile_id(app: Postroom, server: Utf8Server) -> int:
    return Desk(app).smtp_profile("support", server.endpoint)


def _ticket(app: Postroom, profile_id: int, raw: bytes | None = None, **mail: Any) -> int:
    return Desk(app).ticket(profile_id, raw, **mail)


def _send(postroom_cli: Cli, server: Utf8Server) -> tuple[tuple[str, ...], EmailMessage]:
    assert (
        postroom_cli.ok("send", "--now", NOW.isoformat()).stdout.strip()
        == "Sent 1, retry scheduled 0, failed 0."
    )
    [sent] = server.take()
    return sent


def _outbound(postroom_cli: Cli, ticket_id: int) -> dict[str, Any]:
    shown = postroom_cli.ok("ticket", "show", str(ticket_id), "--json").json()
    [reply] = [m for m in shown["messages"] if m["direction"] == "outbound"]
    return dict(reply)


def _reply(postroom_cli: Cli, ticket_id: int, *options: str) -> list[str]:
    lines = postroom_cli.ok(
        "ticket", "reply", str(ticket_id), "--body", "It ships today.", "--now", NOW.isoformat(), *options
    ).stdout.splitlines()
    assert lines[0].startswith("Queued reply ")
    return lines[1:]


def test_a_cc_that_is_no_address_is_skipped_and_named_and_the_reply_goes_to_the_others(
    app: Postroom, postroom_cli: Cli, server: Utf8Server, profile_id: int
) -> None:
    ticket_id = _ticket(app, profile_id, cc="bad@@x, Dana <dana@example.org>")

    notes = _reply(postroom_cli, ticket_id)

    assert notes == ["Skipped 'bad@@x' (Cc): it is not one local part, one @ and a domain."]
    recipients, mail = _send(postroom_cli, server)
    assert recipients == (CUSTOMER, "dana@example.org")
    assert (mail["To"], mail["Cc"]) == (CUSTOMER, "dana@example.org")
    reply = _outbound(postroom_cli, ticket_id)
    assert (reply["to"], reply["cc"]) == ([CUSTOMER], ["dana@example.org"])
    assert reply["skipped_recipients"] == [
        {"address": "bad@@x", "role": "Cc", "reason": "it is not one local part, one @ and a domain"}
    ]


def test_a_reply_to_with_a_comma_inside_quotes_is_answered_as_one_address(
    app: Postroom, postroom_cli: Cli, server: Utf8Server, profile_id: int
) -> None:
    ticket_id = _ticket(app, profile_id, headers={"Reply-To": '"a,b"@customer.example'})

    assert _reply(postroom_cli, ticket_id) == []

    recipients, mail = _send(postroom_cli, server)
    assert recipients == ('"a,b"@customer.example',)
    assert mail["To"] == '"a,b"@customer.example'


def test_an_address_followed_by_a_dsn_parameter_is_answered_at_the_bare_address(
    app: Postroom, postroom_cli: Cli, server: Utf8Server, profile_id: int
) -> None:
    ticket_id = _ticket(app, profile_id, cc="<a@b.example> NOTIFY=SUCCESS")

    assert _reply(postroom_cli, ticket_id) == []

    recipients, mail = _send(postroom_cli, server)
    assert recipients == (CUSTOMER, "a@b.example")
    assert mail["Cc"] == "a@b.example"


@pytest.mark.parametrize("address", ["jörg@bücher.example", "用户@例子.中国"])
def test_an_internationalised_sender_is_answered_over_smtputf8(
    app: Postroom, postroom_cli: Cli, server: Utf8Server, profile_id: int, address: str
) -> None:
    raw = make_mail(**{**CUSTOMER_MAIL, "sender": "Customer <placeholder@example.org>"})
    ticket_id = _ticket(app, profile_id, raw.replace(b"placeholder@example.org", address.encode()))

    assert _reply(postroom_cli, ticket_id) == []

    recipients, mail = _send(postroom_cli, server)
    assert recipients == (address,)
    assert mail["To"] == address


def test_a_reply_with_no_usable_address_left_is_refused_in_one_sentence(
    app: Postroom, postroom_cli: Cli, profile_id: int
) -> None:
    ticket_id = _ticket(app, profile_id, sender="Someone <bad@@x>")

    result = postroom_cli.run("ticket", "reply", str(ticket_id), "--body", "Hello.")

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: Ticket {ticket_id} has no usable address to reply to: 'bad@@x' (From) cannot be used: "
        "it is not one local part, one @ and a domain; choose one with --to."
    ]
    assert outbox_rows(app) == []


def test_the_agent_chooses_the_recipients_with_to_and_cc(
    app: Postroom, postroom_cli: Cli, server: Utf8Server, profile_id: int
) -> None:
    ticket_id = _ticket(app, profile_id, cc="bad@@x, dana@example.org")

    notes = _reply(
        postroom_cli,
        ticket_id,
        "--to",
        "eve@example.net",
        "--to",
        "jörg@bücher.example",
        "--cc",
        "fay@example.net",
    )

    assert notes == []  # nothing computed, so nothing skipped
    recipients, mail = _send(postroom_cli, server)
    assert recipients == ("eve@example.net", "jörg@bücher.example", "fay@example.net")
    assert (mail["To"], mail["Cc"]) == ("eve@example.net, jörg@bücher.example", "fay@example.net")


@pytest.mark.parametrize(
    ("options", "sentence"),
    [
        (
            ["--to", "bad@@x"],
            "Invalid value for '--to': 'bad@@x' cannot be sent to: it is not one local part, one @ and a domain.",
        ),
        (
            ["--to", "eve@example.net", "--cc", "fay"],
            "Invalid value for '--cc': 'fay' cannot be sent to: it has no @ and domain.",
        ),
        (
            ["--cc", "fay@example.net"],
            "Error: --cc needs at least one --to: the chosen recipients replace the computed ones.",
        ),
    ],
)
def test_each_chosen_address_is_checked_in_one_sentence(
    app: Postroom, postroom_cli: Cli, profile_id: int, options: list[str], sentence: str
) -> None:
    ticket_id = _ticket(app, profile_id)

    result = postroom_cli.run("ticket", "reply", str(ticket_id), "--body", "Hello.", *options)

    assert result.exit_code != 0
    assert sentence in result.stderr and "Traceback" not in result.stderr
    assert outbox_rows(app) == []


def test_a_mail_stored_with_comma_joined_addresses_before_the_change_is_still_answered(
    app: Postroom, postroom_cli: Cli, server: Utf8Server, profile_id: int
) -> None:
    ticket_id = _ticket(app, profile_id)
    with app.transaction() as session:  # the columns as every release before issue 11 wrote them
        session.execute(
            update(Message)
            .where(Message.ticket_id == ticket_id)
            .values(
                to_addresses="support@postroom.test,dana@example.org",
                cc_addresses="eve@example.net",
                reply_to="carla.home@example.org",
            )
        )

    assert _reply(postroom_cli, ticket_id) == []

    recipients, _mail = _send(postroom_cli, server)
    assert recipients == ("carla.home@example.org", "dana@example.org", "eve@example.net")
    shown = postroom_cli.ok("ticket", "show", str(ticket_id), "--json").json()
    [inbound] = [m for m in shown["messages"] if m["direction"] == "inbound"]
    assert (inbound["to"], inbound["cc"]) == (
        ["support@postroom.test", "dana@example.org"],
        ["eve@example.net"],
    )


@pytest.mark.parametrize(
    ("header", "addresses"),
    [
        ('"a,b"@customer.example, c@d.example', ['"a,b"@customer.example', "c@d.example"]),
        ("<a@b.example> NOTIFY=SUCCESS", ["a@b.example"]),
        ("A <x@y.example>, bad@@x, Bad <worse@@y>", ["x@y.example", "bad@@x", "worse@@y"]),
        ("jörg@bücher.example, 用户@例子.中国", ["jörg@bücher.example", "用户@例子.中国"]),
        ("undisclosed-recipients:;", []),
    ],
)
def test_an_address_header_is_read_into_whole_addresses_and_junk_beside_one_is_dropped(
    header: str, addresses: list[str]
) -> None:
    assert [address for _name, address in parse_addresses(header, ())] == addresses


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ('"a,b"@customer.example', None),
        ("jörg@bücher.example", None),
        ("用户@例子.中国", None),
        ("ops@[192.0.2.1]", None),
        ("bad@@x", "it is not one local part, one @ and a domain"),
        ("notify=success", "it has no @ and domain"),
        ("a@", "it has no domain after the @"),
        ("a..b@c.example", "its local part is empty or holds characters only quotes allow"),
        ("a b@c.example", "its local part is empty or holds characters only quotes allow"),
        ("a@-c.example", "its domain '-c.example' is not a valid domain name"),
        ("a@c\r\n.example", "it contains a line break or another control character"),
        ("x" * 65 + "@c.example", "its local part is longer than 64 octets"),
    ],
)
def test_whether_an_address_can_be_sent_to_is_said_in_one_clause(address: str, problem: str | None) -> None:
    assert address_problem(address) == problem
