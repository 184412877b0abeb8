"""Tickets, routing rules, stored messages, their addresses and raw bytes, and the fetch ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from postroom.core.data.models.base import Base, MessageStatus, TicketState, big_pk, int_pk, timestamp


class RoutingRule(Base):
    """Routes a profile's mail to a campaign and queue; the first enabled match by priority wins.

    Patterns are shell-style (``*@example.com``), matched case-insensitively; empty matches all.
    """

    __tablename__ = "routing_rule"
    __table_args__ = (Index(None, "media_profile_id", "enabled", "priority"),)

    id: Mapped[int_pk]
    media_profile_id: Mapped[int] = mapped_column(ForeignKey("media_profile.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    from_pattern: Mapped[str | None]
    to_pattern: Mapped[str | None]
    subject_pattern: Mapped[str | None]
    created_at: Mapped[timestamp]


class Ticket(Base):
    """A customer's case: the messages resolved onto it, in one campaign and queue."""

    __tablename__ = "ticket"
    __table_args__ = (
        # The resolvers' candidate queries: open tickets of a campaign by customer or subject.
        Index(None, "campaign_id", "state", "customer_id", "last_activity_at"),
        Index(None, "campaign_id", "state", "normalised_subject", "customer_id"),
        Index(None, "merged_into_id"),
        UniqueConstraint("case_token"),
    )

    id: Mapped[big_pk]
    contact_center_id: Mapped[int] = mapped_column(ForeignKey("contact_center.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queue.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    source_profile_id: Mapped[int | None] = mapped_column(ForeignKey("media_profile.id"))
    subject: Mapped[str] = mapped_column(Text, default="")
    normalised_subject: Mapped[str] = mapped_column(String(512), default="")
    state: Mapped[str] = mapped_column(String(16), default=TicketState.OPEN)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    split_from_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    #: The token outgoing replies carry in their subject, e.g. ``[#PR-42]`` (see tickets.py).
    case_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[timestamp]
    last_activity_at: Mapped[timestamp]
    closed_at: Mapped[datetime | None]


class Message(Base):
    """A stored mail, inbound or outbound, with its parsed fields; raw bytes live in ``message_raw``."""

    __tablename__ = "message"
    __table_args__ = (
        Index(None, "media_profile_id", "message_id"),
        Index(None, "message_id"),
        Index(None, "media_profile_id", "status"),
        Index(None, "ticket_id", "id"),
    )

    id: Mapped[big_pk]
    contact_center_id: Mapped[int] = mapped_column(ForeignKey("contact_center.id"))
    media_profile_id: Mapped[int | None] = mapped_column(ForeignKey("media_profile.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    direction: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.UNROUTED)
    #: Why a mail is quarantined, held or unrouted, in one sentence (a plugin's error text, cut).
    reason: Mapped[str | None] = mapped_column(Text, info={"max_chars": 2000})

    message_id: Mapped[str | None] = mapped_column(String(998))
    #: SHA-256 of an inbound mail's body and identifying headers (core/mail/identity.py): with the
    #: Message-ID, what makes a fetched mail a duplicate. Empty on rows stored before it existed.
    content_digest: Mapped[str | None] = mapped_column(String(64))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    #: The References header: Message-IDs separated by spaces.
    reference_ids: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str | None]
    from_name: Mapped[str | None] = mapped_column(Text)
    #: To, Cc and Reply-To: JSON lists of bare addresses (an address may hold a comma). Rows stored
    #: before issue 11 hold them joined by commas; ``data/messages.py:stored_addresses`` reads both.
    to_addresses: Mapped[str] = mapped_column(Text, default="")
    cc_addresses: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str | None] = mapped_column(Text)
    #: An outgoing reply's recipients left out as unusable: JSON list of {"address", "reason"}.
    skipped_recipients: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_date: Mapped[datetime | None]
    is_auto_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    is_failure_mail: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Tags set by inbound filter plugins, comma-separated.
    tags: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str | None] = deferred(mapped_column(Text))
    html_body: Mapped[str | None] = deferred(mapped_column(Text))
    #: JSON list of {"name", "content_type", "size"}.
    attachments: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[timestamp]

    raw: Mapped[MessageRaw | None] = relationship(uselist=False, cascade="all, delete-orphan", lazy="raise")
    #: Set only to put a message on a ticket not yet inserted (``data/tickets.py:append_message``):
    #: the flush then inserts the ticket first and fills in ``ticket_id``. Never loaded.
    ticket: Mapped[Ticket | None] = relationship(lazy="raise_on_sql")


class MessageRaw(Base):
    """The untouched bytes of a mail, exactly as fetched or sent."""

    __tablename__ = "message_raw"

    message_pk: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class MessageAddress(Base):
    """One address of a message in one role (from, to, cc), for the resolvers' lookups by address."""

    __tablename__ = "message_address"
    __table_args__ = (
        Index(None, "address", "role"),
        Index(None, "message_pk"),
    )

    id: Mapped[big_pk]
    message_pk: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))
    address: Mapped[str]


class FetchLedger(Base):
    """One row per mail fetched from a profile's mailbox, keyed by its mailbox key (docs/architecture.md, "Store before acknowledge").

    Written in the same transaction as the stored message; a key in the ledger is never stored again.
    ``deleted_at`` records that delete-on-fetch removed it from the server.
    """

    __tablename__ = "fetch_ledger"
    __table_args__ = (UniqueConstraint("media_profile_id", "mailbox_key"),)

    id: Mapped[big_pk]
    media_profile_id: Mapped[int] = mapped_column(ForeignKey("media_profile.id"))
    mailbox_key: Mapped[str] = mapped_column(String(1024))
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    fetched_at: Mapped[timestamp]
    deleted_at: Mapped[datetime | None]


class TicketAttribute(Base):
    """A plugin's own indexed value on a ticket (an order number, a contract id), by plugin and name.

    One value per ticket, plugin and name; the index on (plugin, name, value) finds the tickets
    that carry a value without scanning (``postroom.core.data.plugin_data``).
    """

    __tablename__ = "ticket_attribute"
    __table_args__ = (
        UniqueConstraint("ticket_id", "plugin", "name"),
        Index(None, "plugin", "name", "value"),
    )

    id: Mapped[big_pk]
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    plugin: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[timestamp]
    updated_at: Mapped[timestamp]
