"""What the outbox tests share: their clock, Dovecot logins for profiles, queueing and sending, reading the outbox."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import FailedMessageSendInfo, MessageRaw, SMessageSendInfo
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import Outbox, OutboxReport
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SMTP_PASSWORD, SMTP_USERNAME
from tests.support.desk import Desk

#: The fixed clock of these tests (the outbox takes ``now``; the CLI its hidden ``--now``).
NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)


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


def queue_customer_reply(desk: Desk, profile_id: int, **mail: Any) -> int:
    """A customer's mail on a new ticket of ``profile_id`` and the agent's reply to it, queued at ``NOW``."""
    return queue_reply(desk.app, 1, desk.ticket(profile_id, **mail), "Your answer.", now=NOW).send_info_id


def send_at(app: Postroom, now: datetime = NOW) -> OutboxReport:
    """One send run with the clock at ``now``."""
    return Outbox(app).send_due(now)
