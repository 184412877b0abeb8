"""What the outbox tests share: profiles, tickets made by the real inbound pipeline, reading the outbox."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.directory import add_campaign, add_queue
from postroom.core.data.models import (
    Campaign,
    FailedMessageSendInfo,
    MediaProfile,
    Message,
    MessageRaw,
    Queue,
    SMessageSendInfo,
)
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.data.rules import add_rule
from postroom.core.inbound.pipeline import InboundPipeline
from tests.servers.cli import CliResult
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SMTP_PASSWORD, SMTP_USERNAME, SmtpEndpoint

#: The fixed clock of these tests (the outbox takes ``now``; the CLI its hidden ``--now``).
NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
CUSTOMER = "carla.customer@example.org"


def postroom_process(database_url: str, *args: str, timeout: float = 120) -> subprocess.Popen[str]:
    """``postroom ARGS`` as a real process (started, not awaited)."""
    env = {**os.environ, "POSTROOM_DATABASE_URL": database_url}
    return subprocess.Popen(
        [sys.executable, "-m", "postroom", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_postroom_process(database_url: str, *args: str, timeout: float = 120) -> CliResult:
    process = postroom_process(database_url, *args)
    stdout, stderr = process.communicate(timeout=timeout)
    return CliResult(process.returncode, stdout, stderr)


@dataclass
class Desk:
    """A contact centre set up for replies: a campaign with a queue, and helpers to add profiles and tickets."""

    app: Postroom
    campaign_id: int = 0
    queue_id: int = 0

    def __post_init__(self) -> None:
        with self.app.transaction() as session:
            campaign = add_campaign(session, 1, "Support")
            queue = add_queue(session, campaign, "First line")
            self.campaign_id, self.queue_id = campaign.id, queue.id

    def profile(self, name: str, **values: Any) -> int:
        """A profile with a routing rule into the campaign; ``values`` are :class:`ProfileFields`."""
        values.setdefault("send_from_address", f"{name}@postroom.test")
        values.setdefault("tls_verify", False)
        with self.app.transaction() as session:
            profile = create_profile(session, self.app.plugins, 1, name, ProfileFields(**values))
            campaign, queue = session.get(Campaign, self.campaign_id), session.get(Queue, self.queue_id)
            assert campaign is not None and queue is not None
            add_rule(session, profile, campaign, queue)
            return profile.id

    def smtp_profile(self, name: str, endpoint: SmtpEndpoint, **values: Any) -> int:
        """A profile sending through one of the aiosmtpd test servers."""
        if endpoint.username:
            values.setdefault("username", endpoint.username)
            values.setdefault("password", endpoint.password)
        return self.profile(
            name,
            send_protocol=endpoint.protocol,
            outgoing_host=endpoint.host,
            outgoing_port=endpoint.port,
            **values,
        )

    def ticket(self, profile_id: int, raw: bytes | None = None, **mail: Any) -> int:
        """Store a customer's mail through the real inbound pipeline; the id of the ticket it landed on."""
        raw = raw or customer_mail(**mail)
        with self.app.transaction() as session:
            profile = session.get(MediaProfile, profile_id)
            assert profile is not None
            result = InboundPipeline(session, self.app.plugins, profile).store(make_msgid(), raw)
            assert result.message_pk is not None
            ticket_id = session.get(Message, result.message_pk).ticket_id  # type: ignore[union-attr]
        assert ticket_id is not None, "the mail was not routed onto a ticket"
        return ticket_id


def customer_mail(
    subject: str = "Where is my order 4711?",
    *,
    sender: str = f"Carla Customer <{CUSTOMER}>",
    to: str = "support@postroom.test",
    cc: str | None = None,
    message_id: str | None = None,
    references: str | None = None,
    body: str = "Hello,\nmy parcel has not arrived.\nCarla\n",
    headers: dict[str, str] | None = None,
) -> bytes:
    """A customer's plain-text mail, as a mail client writes it."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2031, 3, 3, 9, 30, tzinfo=UTC))
    message["Message-ID"] = message_id or make_msgid(domain="example.org")
    if references:
        message["References"] = references
        message["In-Reply-To"] = references.split()[-1]
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def dovecot_user(dovecot: Dovecot, username: str = SMTP_USERNAME, password: str = SMTP_PASSWORD) -> str:
    """A Dovecot user with the given login: a profile has one login for its IMAP and SMTP servers."""
    (dovecot.base / "users" / username).write_text(f"{username}:{{PLAIN}}{password}::::::\n")
    dovecot.passwords[username] = password
    return username


def outbox_rows(app: Postroom) -> list[SMessageSendInfo]:
    with app.transaction() as session:
        return list(session.scalars(select(SMessageSendInfo).order_by(SMessageSendInfo.id)))


def failure_rows(app: Postroom) -> list[FailedMessageSendInfo]:
    with app.transaction() as session:
        return list(session.scalars(select(FailedMessageSendInfo).order_by(FailedMessageSendInfo.id)))


def queued_mail(app: Postroom, send_info_id: int) -> EmailMessage:
    """The queued reply as it will go out, parsed."""
    with app.transaction() as session:
        row = session.get(SMessageSendInfo, send_info_id)
        assert row is not None
        raw = session.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == row.message_pk))
    assert raw is not None
    return parse(raw)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    markup = message.get_body(("html",))
    assert text is not None and markup is not None
    contents = (text.get_content(), markup.get_content())
    return contents[0].replace("\r\n", "\n"), contents[1].replace("\r\n", "\n")


def pending(row: SMessageSendInfo) -> list[str]:
    return list(json.loads(row.pending_recipients))
