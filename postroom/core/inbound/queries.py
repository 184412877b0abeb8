"""Inbound mail waiting for someone, as the command line shows it: unrouted and quarantined mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.data.models import Message, MessageStatus
from postroom.core.data.profiles import profile_names


def held_mail_as_json(
    session: Session, contact_center_id: int, status: MessageStatus
) -> list[dict[str, Any]]:
    """The mails of a contact centre in ``status`` (unrouted, quarantined), oldest first, with the reason."""
    names = profile_names(session)
    messages = session.scalars(
        select(Message)
        .where(Message.contact_center_id == contact_center_id, Message.status == status)
        .order_by(Message.id)
    )
    return [
        {
            "id": m.id,
            "profile": names.get(m.media_profile_id or 0),
            "message_id": m.message_id,
            "from": m.from_address,
            "subject": m.subject,
            "reason": m.reason,
            "received_at": m.created_at.isoformat(),
        }
        for m in messages
    ]
