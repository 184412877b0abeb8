"""The operator's console (issue 13): its accounts, their open sessions, which queues an agent sees,
the audit log, and the failed sign-ins the rate limit counts.

The console's own code lives in ``postroom.web``; these rows live here so that the CLI
(``postroom web user ...``) and the console share one store, and the worker never imports the web stack.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from postroom.core.data.models.base import Base, big_pk, int_pk, timestamp
from postroom.core.data.models.directory import Queue


class WebRole(StrEnum):
    """What a console account may do: operators administer everything, agents work their queues' tickets."""

    OPERATOR = "operator"
    AGENT = "agent"


web_user_queue = Table(
    "web_user_queue",
    Base.metadata,
    Column("web_user_id", Integer, ForeignKey("web_user.id", ondelete="CASCADE"), primary_key=True),
    Column("queue_id", Integer, ForeignKey("queue.id", ondelete="CASCADE"), primary_key=True),
)


class WebUser(Base):
    """A console account; the password only as its Argon2 hash (``postroom.web.users``)."""

    __tablename__ = "web_user"

    id: Mapped[int_pk]
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    #: A :class:`WebRole` value.
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[timestamp]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    #: The queues an agent sees (an operator sees every queue whatever is listed here).
    queues: Mapped[list[Queue]] = relationship(secondary=web_user_queue, order_by="Queue.id")


class AuditLog(Base):
    """One configuration change: who (``actor``), what (``action`` on ``target``), when, and details."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"),)

    id: Mapped[big_pk]
    at: Mapped[timestamp]
    #: A console account's name, or ``cli:<system user>`` for the command line.
    actor: Mapped[str] = mapped_column(String(255))
    #: A dotted verb, e.g. ``web-user.add``, ``profile.modify``.
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    #: What changed, as JSON; never a password or a secret.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SignInFailure(Base):
    """A failed sign-in: the rate limit counts these per name and per client address, in the database so
    that it holds across waitress's threads and across several ``postroom web`` processes."""

    __tablename__ = "sign_in_failure"
    __table_args__ = (Index(None, "name", "at"), Index(None, "client", "at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[timestamp]
    name: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))


class WebSession(Base):
    """A signed-in browser: the cookie holds a random token, this row its SHA-256 (a copy of the table
    opens no session). Signing out deletes the row, so a copied cookie dies with it; a new password or a
    removed account deletes all of the account's rows."""

    __tablename__ = "web_session"
    __table_args__ = (Index(None, "web_user_id"),)

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    web_user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"))
    created_at: Mapped[timestamp]


class WebTicketRead(Base):
    """What a console account has seen of a ticket: its last activity when the account last opened it.
    The inbox marks the ticket unread for that account while it has had activity since
    (``postroom.core.data.inbox``)."""

    __tablename__ = "web_ticket_read"

    web_user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("ticket.id", ondelete="CASCADE"),
        primary_key=True,
    )
    seen_activity_at: Mapped[timestamp]
