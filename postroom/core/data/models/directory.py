"""Who and where: contact centres, campaigns, queues, agents and customers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Column, ForeignKey, Index, Integer, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from postroom.core.data.models.base import Base, int_pk, timestamp

if TYPE_CHECKING:
    from postroom.core.data.models.profiles import MediaProfile

campaign_media_profile = Table(
    "campaign_media_profile",
    Base.metadata,
    Column("campaign_id", Integer, ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True),
    Column("media_profile_id", Integer, ForeignKey("media_profile.id", ondelete="CASCADE"), primary_key=True),
)

queue_media_profile = Table(
    "queue_media_profile",
    Base.metadata,
    Column("queue_id", Integer, ForeignKey("queue.id", ondelete="CASCADE"), primary_key=True),
    Column("media_profile_id", Integer, ForeignKey("media_profile.id", ondelete="CASCADE"), primary_key=True),
)

agent_media_profile = Table(
    "agent_media_profile",
    Base.metadata,
    Column("agent_id", Integer, ForeignKey("agent.id", ondelete="CASCADE"), primary_key=True),
    Column("media_profile_id", Integer, ForeignKey("media_profile.id", ondelete="CASCADE"), primary_key=True),
)


class ContactCenter(Base):
    __tablename__ = "contact_center"

    id: Mapped[int_pk]
    name: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[timestamp]


class Campaign(Base):
    __tablename__ = "campaign"
    __table_args__ = (UniqueConstraint("contact_center_id", "name"),)

    id: Mapped[int_pk]
    contact_center_id: Mapped[int] = mapped_column(ForeignKey("contact_center.id"))
    name: Mapped[str]
    created_at: Mapped[timestamp]

    queues: Mapped[list[Queue]] = relationship(back_populates="campaign", order_by="Queue.id")
    profiles: Mapped[list[MediaProfile]] = relationship(secondary=campaign_media_profile)


class Queue(Base):
    __tablename__ = "queue"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int_pk]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    name: Mapped[str]
    created_at: Mapped[timestamp]

    campaign: Mapped[Campaign] = relationship(back_populates="queues")
    profiles: Mapped[list[MediaProfile]] = relationship(secondary=queue_media_profile)


class Agent(Base):
    """A user who answers tickets."""

    __tablename__ = "agent"
    __table_args__ = (UniqueConstraint("contact_center_id", "name"),)

    id: Mapped[int_pk]
    contact_center_id: Mapped[int] = mapped_column(ForeignKey("contact_center.id"))
    name: Mapped[str]
    email: Mapped[str | None]
    created_at: Mapped[timestamp]

    profiles: Mapped[list[MediaProfile]] = relationship(secondary=agent_media_profile)


class Customer(Base):
    """A customer; found by any of their email addresses."""

    __tablename__ = "customer"

    id: Mapped[int_pk]
    contact_center_id: Mapped[int] = mapped_column(ForeignKey("contact_center.id"))
    name: Mapped[str]
    created_at: Mapped[timestamp]

    emails: Mapped[list[CustomerEmail]] = relationship(
        back_populates="customer", order_by="CustomerEmail.id", cascade="all, delete-orphan"
    )


class CustomerEmail(Base):
    """One address of a customer, stored lower-cased; unique within a contact centre."""

    __tablename__ = "customer_email"
    __table_args__ = (
        UniqueConstraint("contact_center_id", "address"),
        Index(None, "customer_id"),
    )

    id: Mapped[int_pk]
    contact_center_id: Mapped[int] = mapped_column(ForeignKey("contact_center.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column()
    created_at: Mapped[timestamp]

    customer: Mapped[Customer] = relationship(back_populates="emails")
