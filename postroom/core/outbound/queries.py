"""The outbox as the command line shows it: outgoing replies with their send state, and failed attempts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.data.messages import stored_addresses
from postroom.core.data.models import FailedMessageSendInfo, Message, SMessageSendInfo
from postroom.core.data.profiles import profile_names


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def outbox_as_json(
    session: Session,
    contact_center_id: int,
    states: Sequence[str] = (),
    ticket_id: int | None = None,
    outbox_id: int | None = None,
) -> list[dict[str, Any]]:
    """Outgoing replies of a contact centre, oldest first (``outbox list --json``); by state, ticket or id."""
    query = (
        select(SMessageSendInfo, Message)
        .join(Message, Message.id == SMessageSendInfo.message_pk)
        .where(Message.contact_center_id == contact_center_id)
    )
    if states:
        query = query.where(SMessageSendInfo.state.in_(states))
    if ticket_id is not None:
        query = query.where(SMessageSendInfo.ticket_id == ticket_id)
    if outbox_id is not None:
        query = query.where(SMessageSendInfo.id == outbox_id)
    names = profile_names(session)
    return [
        _outbox_row(row, message, names)
        for row, message in session.execute(query.order_by(SMessageSendInfo.id))
    ]


def _outbox_row(row: SMessageSendInfo, message: Message, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "profile": names.get(row.media_profile_id) if row.media_profile_id else None,
        "message_id": row.message_id,
        "to": [*stored_addresses(message.to_addresses), *stored_addresses(message.cc_addresses)],
        "pending": json.loads(row.pending_recipients or "[]"),
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_error": row.last_error,
        "category": row.category,
        "policy": row.policy,
        "sent_at": _iso(row.sent_at),
        "created_at": _iso(row.created_at),
        "claimed_by": row.claimed_by,
        "bounced_at": _iso(row.bounced_at),
    }


def failures_as_json(
    session: Session, contact_center_id: int, outbox_id: int | None = None
) -> list[dict[str, Any]]:
    """Failed send attempts of a contact centre, oldest first (``failures list --json``); of one reply."""
    query = (
        select(FailedMessageSendInfo)
        .join(SMessageSendInfo, SMessageSendInfo.id == FailedMessageSendInfo.send_info_id)
        .join(Message, Message.id == SMessageSendInfo.message_pk)
        .where(Message.contact_center_id == contact_center_id)
    )
    if outbox_id is not None:
        query = query.where(FailedMessageSendInfo.send_info_id == outbox_id)
    return [
        {
            "id": f.id,
            "outbox_id": f.send_info_id,
            "attempt": f.attempt,
            "recipient": f.recipient,
            "reply_code": f.reply_code,
            "enhanced_code": f.enhanced_code,
            "text": f.text,
            "category": f.category,
            "policy": f.policy,
            "next_attempt_at": _iso(f.next_attempt_at),
            "created_at": _iso(f.created_at),
        }
        for f in session.scalars(query.order_by(FailedMessageSendInfo.id))
    ]
