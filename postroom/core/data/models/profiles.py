"""Email media profiles, their configuration rows, and the seed-named configuration tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from postroom.core.contract.protocols import NO_PROTOCOL
from postroom.core.data.logins import OUTGOING_LOGINS as OUTGOING_LOGINS  # re-exported
from postroom.core.data.logins import OutgoingLogin
from postroom.core.data.models.base import Base, ProfileStatus, int_pk, timestamp


class MediaProfile(Base):
    """An email media profile: a mailbox and its outgoing server.

    Deleted profiles keep their row (``deleted_at`` set) so tickets and messages can still
    name where they came from; names are unique among the profiles that are not deleted.
    """

    __tablename__ = "media_profile"
    __table_args__ = (
        Index(
            "uq_media_profile_live_name",
            "contact_center_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(None, "next_fetch_at"),
    )

    id: Mapped[int_pk]
    contact_center_id: Mapped[int] = mapped_column(ForeignKey("contact_center.id"))
    media_profile_type: Mapped[str] = mapped_column(String(32), default="email")
    name: Mapped[str]
    username: Mapped[str | None]
    #: Fernet token of the password; never decrypted except to log in.
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    send_from_name: Mapped[str | None] = mapped_column(String(52))
    send_from_address: Mapped[str | None]
    subject_prefix: Mapped[str | None]

    outgoing_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    outgoing_host: Mapped[str | None]
    outgoing_port: Mapped[int | None]
    send_protocol: Mapped[str] = mapped_column(String(32), default=NO_PROTOCOL)
    outgoing_folder: Mapped[str | None] = mapped_column(String(1024))
    #: How the outgoing server is logged in to (``OUTGOING_LOGINS``): ``same`` as the incoming
    #: server, its own ``password``, an access ``token``, or ``none`` (a relay without AUTH).
    outgoing_login: Mapped[str] = mapped_column(
        String(16), default=OutgoingLogin.SAME.value, server_default=OutgoingLogin.SAME.value
    )
    #: The outgoing server's own user (``password``; for ``token`` the mailbox, else the incoming user).
    outgoing_username: Mapped[str | None]
    #: Fernet token of the outgoing server's own password (``password`` mode only); never shown.
    outgoing_password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)

    reply_to_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_to_address: Mapped[str | None]
    delete_on_fetch: Mapped[bool] = mapped_column(Boolean, default=False)

    incoming_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    incoming_host: Mapped[str | None]
    incoming_port: Mapped[int | None]
    fetch_protocol: Mapped[str] = mapped_column(String(32), default=NO_PROTOCOL)
    incoming_folder: Mapped[str | None] = mapped_column(String(1024))
    fetch_interval: Mapped[int] = mapped_column(Integer, default=10)
    fetch_last_days: Mapped[int | None]

    signature_html: Mapped[str | None] = mapped_column(Text)
    #: "before" or "after" the quoted text.
    signature_position: Mapped[str] = mapped_column(String(16), default="before")
    tls_verify: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The operator's consent to log in without TLS when the server offers no STARTTLS/STLS.
    allow_plaintext_login: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    status: Mapped[str] = mapped_column(String(16), default=ProfileStatus.OK)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_fetch_at: Mapped[datetime | None]
    next_fetch_at: Mapped[datetime | None]
    #: The worker that holds the fetch lease, and until when (docs/architecture.md, "Leases").
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]

    created_at: Mapped[timestamp]
    updated_at: Mapped[timestamp]
    deleted_at: Mapped[datetime | None]

    resolvers: Mapped[list[MediaProfileResolver]] = relationship(
        order_by="MediaProfileResolver.position", cascade="all, delete-orphan"
    )

    # "Can fetch" and "can send" are each defined once, for Python checks and for SQL queries
    # (the fetch leases, ``postroom fetch``) alike; the second definition is the SQL spelling.

    @hybrid_property
    def can_fetch(self) -> bool:
        """Whether this profile fetches: not deleted, incoming mail allowed, and a fetch protocol."""
        return self.deleted_at is None and bool(self.incoming_allowed) and self.fetch_protocol != NO_PROTOCOL

    @can_fetch.inplace.expression
    @classmethod
    def _can_fetch_expression(cls) -> ColumnElement[bool]:
        return and_(
            cls.deleted_at.is_(None), cls.incoming_allowed.is_(True), cls.fetch_protocol != NO_PROTOCOL
        )

    @hybrid_property
    def can_send(self) -> bool:
        """Whether this profile sends: not deleted, outgoing mail allowed, and a send protocol."""
        return self.deleted_at is None and bool(self.outgoing_allowed) and self.send_protocol != NO_PROTOCOL

    @can_send.inplace.expression
    @classmethod
    def _can_send_expression(cls) -> ColumnElement[bool]:
        return and_(
            cls.deleted_at.is_(None), cls.outgoing_allowed.is_(True), cls.send_protocol != NO_PROTOCOL
        )


class MediaProfileResolver(Base):
    """One entry of a profile's ordered ticket-resolver list."""

    __tablename__ = "media_profile_resolver"

    media_profile_id: Mapped[int] = mapped_column(
        ForeignKey("media_profile.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    resolver_name: Mapped[str] = mapped_column(String(64))


class MediaProfileConfiguration(Base):
    """The seed's per-profile JSON properties (retry variables); rows typed in SQL work as written."""

    __tablename__ = "media_profile_configuration"
    __table_args__ = (Index(None, "media_profile_id"),)

    id: Mapped[int_pk]
    media_profile_id: Mapped[int] = mapped_column(ForeignKey("media_profile.id", ondelete="CASCADE"))
    contact_center_id: Mapped[int] = mapped_column(Integer)
    media_profile_type: Mapped[str] = mapped_column(String(32), default="email")
    #: JSON text, e.g. ``{"maxRetryCount":"3","rateLimitRetryTime":"86400"}``.
    media_profile_properties: Mapped[str] = mapped_column(Text, default="{}")


class IcConfigurationParameter(Base):
    """The seed's contact-centre parameters: ``failureMailConfiguration``, ``mediaProfileMapping``.

    Several rows of one name are allowed; names are matched case-insensitively.
    """

    __tablename__ = "ic_configuration_parameter"
    __table_args__ = (Index(None, "contact_center_id", "name"),)

    id: Mapped[int_pk]
    contact_center_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str]
    value: Mapped[str] = mapped_column(Text)


class PluginSwitch(Base):
    """A plugin an operator switched off (or back on) with ``postroom plugins disable|enable``."""

    __tablename__ = "plugin_switch"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int_pk]
    name: Mapped[str]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    changed_at: Mapped[timestamp]


class EngineSetting(Base):
    """postroom's own key/value state: the configuration generation ``postroom reload`` bumps,
    the hash of the administrator token, and the like."""

    __tablename__ = "engine_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ProtocolState(Base):
    """What a profile's fetch protocol asked to keep between cycles (``Mailbox.sync_state``).

    One row per profile and protocol, e.g. the Microsoft Graph delta link. Written only after a
    cycle stored (and acknowledged) everything it listed; opaque to the core.
    """

    __tablename__ = "protocol_state"

    media_profile_id: Mapped[int] = mapped_column(
        ForeignKey("media_profile.id", ondelete="CASCADE"), primary_key=True
    )
    protocol: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[timestamp]
