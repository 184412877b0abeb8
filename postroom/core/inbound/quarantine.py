"""Quarantined mail, looked at and tried again: ``postroom quarantine show|export|retry``.

A quarantined mail keeps its raw bytes exactly as fetched. Once the cause is gone (a plugin fixed,
disabled or replaced; a parser improved), ``retry`` runs the rest of the pipeline on those bytes:
parse, filter, route, resolve. It works on the quarantined row itself, so the mail lands on its
ticket once however often a retry is asked for: a mail that is no longer in quarantine is refused.
A mail that fails again stays quarantined with the new reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data.columns import fit, fitted
from postroom.core.data.messages import address_roles
from postroom.core.data.models import MediaProfile, Message, MessageAddress, MessageRaw, MessageStatus
from postroom.core.data.profiles import profile_names
from postroom.core.inbound.pipeline import parsed_fields
from postroom.core.inbound.process import MailProcessor
from postroom.core.mail.identity import content_digest
from postroom.core.mail.parse import MailParseError, parse_mail
from postroom.core.plugin_host import PluginHost


@dataclass
class RetryResult:
    """What became of one quarantined mail tried again."""

    message_pk: int
    status: str
    ticket_id: int | None
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.message_pk, "status": self.status, "ticket_id": self.ticket_id, "reason": self.reason}


def quarantined(session: Session, contact_center_id: int, message_pk: int) -> Message:
    """The quarantined mail ``message_pk`` of the contact centre, or one sentence saying why not."""
    message = session.get(Message, message_pk)
    if message is None or message.contact_center_id != contact_center_id:
        raise NotFoundError(f"There is no message {message_pk}; 'postroom quarantine list' shows the quarantine.")
    if message.status != MessageStatus.QUARANTINED:
        raise UserError(f"Message {message_pk} is not in quarantine (it is {message.status}); nothing to do.")
    return message


def quarantined_ids(session: Session, contact_center_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Message.id)
            .where(Message.contact_center_id == contact_center_id, Message.status == MessageStatus.QUARANTINED)
            .order_by(Message.id)
        )
    )


def raw_bytes(session: Session, message: Message) -> bytes:
    raw = session.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == message.id))
    if raw is None:
        raise UserError(f"Message {message.id} has no stored raw bytes.")
    return bytes(raw)


def show(session: Session, message: Message) -> dict[str, Any]:
    """What ``quarantine show`` prints: the row, the reason, and the size of the raw mail."""
    raw = raw_bytes(session, message)
    return {
        "id": message.id,
        "profile": profile_names(session).get(message.media_profile_id or 0),
        "reason": message.reason,
        "message_id": message.message_id,
        "from": message.from_address,
        "subject": message.subject,
        "received_at": message.created_at.isoformat(),
        "size": len(raw),
        "headers": raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace"),
    }


def retry(session: Session, plugins: PluginHost, message: Message) -> RetryResult:
    """Parse, filter, route and resolve a quarantined mail again, inside ``session`` (savepoints)."""
    profile = session.get(MediaProfile, message.media_profile_id)
    if profile is None:
        raise UserError(f"The profile of message {message.id} no longer exists; it cannot be processed again.")
    raw = raw_bytes(session, message)
    try:
        parsed = parse_mail(raw)
    except MailParseError as error:
        message.reason = fit(Message.reason, str(error))
        return RetryResult(message.id, message.status, None, message.reason)
    if message.subject is None and message.from_address is None and message.message_id is None:
        # Quarantined before it was parsed: the row gets what a stored mail has.
        for key, value in fitted(Message, parsed_fields(parsed)).items():
            setattr(message, key, value)
        message.content_digest = content_digest(raw)
        session.execute(delete(MessageAddress).where(MessageAddress.message_pk == message.id))
        roles = dict.fromkeys((r, a.lower()) for r, a in address_roles(parsed.from_address, parsed.to, parsed.cc))
        if roles:
            session.execute(
                insert(MessageAddress),
                [
                    {"message_pk": message.id, "role": role, "address": fit(MessageAddress.address, address)}
                    for role, address in roles
                ],
            )
    message.status = MessageStatus.UNROUTED
    message.reason = None
    session.flush()
    MailProcessor(session, plugins, profile).process(message, parsed)
    return RetryResult(message.id, message.status, message.ticket_id, message.reason)
