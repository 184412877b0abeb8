"""A profile's OAuth2 grant: who signed in with which provider, and the tokens, encrypted (issue 17).

One row per profile. The token providers (``postroom.plugins.oauth``) read it, lock it to refresh
(so several workers never refresh the same token at once) and write the new tokens back; the
``oauth`` commands create, show and delete it. Every secret column holds a Fernet token
(``core/data/secrets.py``), never the clear text.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from postroom.core.data.models.base import Base, int_pk, timestamp


class OAuthGrant(Base):
    """How a profile obtains its access tokens, and the cached token with its expiry."""

    __tablename__ = "oauth_grant"

    id: Mapped[int_pk]
    media_profile_id: Mapped[int] = mapped_column(
        ForeignKey("media_profile.id", ondelete="CASCADE"), unique=True
    )
    #: "microsoft" or "google": the plugin that answers for this grant.
    provider: Mapped[str] = mapped_column(String(32))
    #: client-credentials, device-code, installed-app or service-account.
    flow: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str | None]
    client_id: Mapped[str | None] = mapped_column(String(1024))
    #: The client secret, or a service account's whole key file (JSON), encrypted.
    client_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None]
    scopes: Mapped[str] = mapped_column(Text, default="")
    #: Who the tokens act as: the signed-in user, or the mailbox a service account impersonates.
    account: Mapped[str | None]
    #: The authorisation server when not the provider's own (tests, sovereign clouds).
    authority: Mapped[str | None] = mapped_column(String(1024))
    #: A CA bundle to verify the authorisation server with, when not the system's.
    ca_file: Mapped[str | None] = mapped_column(String(1024))
    last_refresh_at: Mapped[datetime | None]
    refresh_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[timestamp]
    updated_at: Mapped[timestamp]
