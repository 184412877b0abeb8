"""Inbound mail waiting for someone, as the command line shows it: unrouted and quarantined mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from postroom.core.data.models import Message, MessageStatus
from postroom.core.data.paging import Window
from postroom.core.data.profiles import profile_names


def held_mail_as_json(
    session: Session, contact_center_id: int, status: MessageStatus, window: Window | None = None
) -> list[dict[str, Any]]:
    """The mails of a contact centre in ``status`` (unrouted, quarantined), oldest first, with the reason;
    with ``window``, one page of them, newest first (read with LIMIT/OFFSET)."""
    names = profile_names(session)
    query = select(Message).where(Message.contact_center_id == contact_center_id, Message.status == status)
    if window is None:
        query = query.order_by(Message.id)
    else:
        query = query.order_by(Message.id.desc()).limit(window.limit).offset(window.offset)
    messages = session.scalars(query)
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


def count_held(session: Session, contact_center_id: int, status: MessageStatus) -> int:
    """How many mails of a contact centre are in ``status``."""
    query = select(func.count()).select_from(Message).where(
        Message.contact_center_id == contact_center_id, Message.status == status
    )
    return int(session.scalar(query) or 0)


def held_profile_names(session: Session, contact_center_id: int, status: MessageStatus) -> list[str]:
    """The names of the profiles that hold mail in ``status``, sorted."""
    ids = session.scalars(
        select(Message.media_profile_id)
        .where(Message.contact_center_id == contact_center_id, Message.status == status)
        .distinct()
    )
    names = profile_names(session)
    return sorted({names[i] for i in ids if i is not None and i in names})
