"""``postroom demo``: the whole job on the embedded default — SQLite, a Maildir mailbox, the demo's sink.

Builds a fresh demo home with a handful of realistic customer mails, configures a profile, a
campaign, a queue, a rule and two resolvers, fetches, queues and sends an agent's reply, and
shows a retry being scheduled for a recipient the sink turns away. No server, no network. The
sink is the demo's own send protocol (:mod:`postroom.demo.sink`), registered here and nowhere else.
"""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data import configuration, directory, profiles, rules
from postroom.core.data.models import Ticket
from postroom.core.data.profiles import ProfileFields
from postroom.core.inbound.fetch import Fetcher, FetchReport
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import OutboxReport, send_due
from postroom.demo import sink

SUPPORT = "support@acme.example"
MAILER_DAEMON = "mailer-daemon@mx.acme.example"


def _mail(
    sender: str,
    subject: str,
    body: str,
    minutes: int,
    *,
    message_id: str,
    cc: str | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = f"ACME Support <{SUPPORT}>"
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC) - timedelta(minutes=minutes))
    mail["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
        mail["References"] = f"<{in_reply_to}>"
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail.as_bytes()


def _bounce(failed: str, minutes: int) -> bytes:
    """A standard delivery status notification (RFC 3464), as Postfix sends it."""
    date = format_datetime(datetime.now(UTC) - timedelta(minutes=minutes))
    return (
        f"From: Mail Delivery System <{MAILER_DAEMON}>\r\nTo: {SUPPORT}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nDate: {date}\r\n"
        "Message-ID: <bounce-1@mx.acme.example>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\n"
        f"This is the mail system. Your message could not be delivered to <{failed}>.\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.acme.example\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--dsn--\r\n"
    ).encode()


CUSTOMER_MAILS = [
    lambda: _mail(
        "Alice Martin <alice@customer.example>",
        "Where is my order #1001?",
        "Hello,\n\nI ordered a kettle ten days ago and it has not arrived.\n\nAlice",
        50,
        message_id="alice-1@customer.example",
        cc="Bob Martin <bob@customer.example>",
    ),
    lambda: _mail(
        "Carol Diaz <carol@customer.example>",
        "Cancel my subscription",
        "Please cancel my subscription at the end of the month.\n\nCarol",
        45,
        message_id="carol-1@customer.example",
    ),
    lambda: _mail(
        "Alice Martin <alice@customer.example>",
        "Re: Where is my order #1001?",
        "The tracking number you sent does not work.\n\nAlice",
        40,
        message_id="alice-2@customer.example",
        in_reply_to="alice-1@customer.example",
    ),
    lambda: _mail(
        "Alice <alice.martin@home.example>",
        "Invoice for order #1001",
        "Could you also send me the invoice? (Writing from my home address.)",
        35,
        message_id="alice-3@home.example",
    ),
    lambda: _mail(
        "Bob Martin <bob@customer.example>",
        "Re: Where is my order #1001?",
        "Alice's husband here, she is travelling: the parcel is still not here.",
        30,
        message_id="bob-1@customer.example",
        in_reply_to="alice-1@customer.example",
    ),
    lambda: _bounce("carol@customer.example", 20),
    lambda: _mail(
        "Dave Kim <dave@customer.example>",
        "Out of office: Your ACME order",
        "I am out of the office until Monday.",
        15,
        message_id="dave-ooo@customer.example",
        headers={"Auto-Submitted": "auto-replied"},
    ),
    lambda: _mail(
        "Erin Wu <busy.erin@customer.example>",
        "Warranty claim",
        "My toaster broke after two weeks; how do I claim the warranty?",
        10,
        message_id="erin-1@customer.example",
    ),
]


@dataclass
class DemoResult:
    home: Path
    database_url: str
    fetch: FetchReport
    first_send: OutboxReport
    app: Postroom


def run_demo(home: Path) -> DemoResult:
    """Build the demo home under ``home`` (which must not hold a demo yet) and run the job once."""
    inbox, sent = home / "mailbox", home / "sent"
    box = mailbox.Maildir(inbox, create=True)
    mailbox.Maildir(sent, create=True)
    for make in CUSTOMER_MAILS:
        box.add(make())
    url = f"sqlite:///{home / 'postroom.sqlite'}"
    app = Postroom(url, extra_plugins=[(sink.DemoSinkProtocol.NAME, sink)])
    app.init()
    with app.transaction() as session:
        profile = profiles.create_profile(
            session,
            app.plugins,
            1,
            "support",
            ProfileFields(
                fetch_protocol="maildir",
                incoming_folder=str(inbox),
                delete_on_fetch=True,
                send_protocol=sink.DemoSinkProtocol.NAME,
                outgoing_folder=str(sent),
                send_from_name="ACME Support",
                send_from_address=SUPPORT,
                subject_prefix="[ACME]",
            ),
        )
        profiles.set_resolvers(session, app.plugins, profile, ["case-id", "customer"])
        campaign = directory.add_campaign(session, 1, "Customer care")
        queue = directory.add_queue(session, campaign, "First line")
        rules.add_rule(session, profile, campaign, queue)
        directory.add_customer(
            session, 1, "Alice Martin", ["alice@customer.example", "alice.martin@home.example"]
        )
        directory.add_agent(session, 1, "Sam Agent", "sam@acme.example")
        configuration.add_value(session, 1, "failureMailConfiguration", MAILER_DAEMON)
        profile_id = profile.id
    fetch = Fetcher(app).fetch_profile(profile_id)
    with app.transaction() as session:
        alice = session.scalar(select(Ticket).where(Ticket.subject == "Where is my order #1001?"))
        erin = session.scalar(select(Ticket).where(Ticket.subject == "Warranty claim"))
        assert alice is not None and erin is not None, "the demo mails did not make their tickets"
        alice_id, erin_id = alice.id, erin.id
    queue_reply(
        app, 1, alice_id, "Dear Alice,\n\nyour parcel left our warehouse today.", agent_name="Sam Agent"
    )
    queue_reply(
        app, 1, erin_id, "Hello Erin,\n\nplease send us a photo of the receipt.", agent_name="Sam Agent"
    )
    first_send = send_due(app)
    return DemoResult(home, url, fetch, first_send, app)
