"""The outbox: one ``s_message_send_info`` row per outgoing mail, one ``failed_message_send_info`` per failed try."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.core.data.models.base import Base, SendState, big_pk, timestamp


class SMessageSendInfo(Base):
    """The send state of one outgoing mail (docs/architecture.md, "At-least-once sending").

    ``pending_recipients`` holds the recipients still to deliver (JSON list): after a partial
    refusal only the refused ones are retried.
    """

    __tablename__ = "s_message_send_info"
    __table_args__ = (
        # Senders claim due rows by state and time.
        Index(None, "state", "next_attempt_at"),
        Index(None, "message_pk"),
        Index(None, "ticket_id"),
        # A bounce names the Message-ID of the mail it returns.
        Index(None, "message_id"),
    )

    id: Mapped[big_pk]
    message_pk: Mapped[int] = mapped_column(ForeignKey("message.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    media_profile_id: Mapped[int | None] = mapped_column(ForeignKey("media_profile.id"))
    message_id: Mapped[str] = mapped_column(String(998))
    envelope_from: Mapped[str | None]
    pending_recipients: Mapped[str] = mapped_column(Text, default="[]")
    state: Mapped[str] = mapped_column(String(20), default=SendState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text, info={"max_chars": 4000})
    category: Mapped[str | None] = mapped_column(String(64))
    policy: Mapped[str | None] = mapped_column(String(64))
    claimed_by: Mapped[str | None]
    claim_expires_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    bounced_at: Mapped[datetime | None]
    bounce_text: Mapped[str | None] = mapped_column(Text, info={"max_chars": 4000})
    created_at: Mapped[timestamp]


class FailedMessageSendInfo(Base):
    """One failed send attempt: what the server said, its category, its policy and the next try."""

    __tablename__ = "failed_message_send_info"
    __table_args__ = (Index(None, "send_info_id"),)

    id: Mapped[big_pk]
    send_info_id: Mapped[int] = mapped_column(ForeignKey("s_message_send_info.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    recipient: Mapped[str | None]
    reply_code: Mapped[int | None]
    enhanced_code: Mapped[str | None] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text, info={"max_chars": 4000})
    category: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(64))
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[timestamp]
