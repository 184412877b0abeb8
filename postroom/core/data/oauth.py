"""A profile's OAuth2 grant row: saved by ``oauth connect``, shown by ``oauth status``, removed by ``oauth disconnect``.

The secrets go in encrypted (``secrets.py``) and never come out here: :func:`grant_status` shows
what an operator may see, and nothing else. The providers (``postroom.plugins.oauth``) refresh the
tokens under the row's lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.contract.errors import UserError
from postroom.core.data.models import MediaProfile, OAuthGrant, utcnow
from postroom.core.data.secrets import encrypt_password

if TYPE_CHECKING:
    from postroom.core.plugin_host import PluginHost

#: The builtin token providers (``postroom.plugins.oauth``), by plugin name: the CLI's and the console's choices.
PROVIDERS = ("microsoft", "google")


def token_provider(plugins: PluginHost, name: str) -> Any:
    """The ``PROVIDER`` object of the token plugin ``name``; one sentence when it is missing or switched off."""
    module = plugins.plugin(name) if name in PROVIDERS else None
    provider = getattr(module, "PROVIDER", None)
    if provider is None:
        raise UserError(f"The token provider {name!r} is not installed or is disabled ('postroom plugins list').")
    return provider


def service_account_client_id(key: str | None) -> str | None:
    """The ``client_id`` of a Google service-account key (JSON), or None when it has none."""
    try:
        document = json.loads(key or "")
    except ValueError:
        raise UserError("The service-account key is not a JSON key file from the Google Cloud console.") from None
    found = document.get("client_id") if isinstance(document, dict) else None
    return str(found) if found else None


@dataclass
class NewGrant:
    """What ``oauth connect`` obtained, secrets in the clear until they are stored."""

    provider: str
    flow: str
    scopes: list[str]
    access_token: str
    expires_in: float
    tenant: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    account: str | None = None
    authority: str | None = None
    ca_file: str | None = None

    def __repr__(self) -> str:
        return f"NewGrant(provider={self.provider!r}, flow={self.flow!r}, account={self.account!r})"


def _encrypted(value: str | None) -> bytes | None:
    return encrypt_password(value) if value else None


def record_token(grant: OAuthGrant, access_token: str, expires_in: float, refresh_token: str | None) -> None:
    """Write a new access token (and a rotated refresh token) onto the grant, encrypted, and count it."""
    now = utcnow()
    grant.access_token_encrypted = encrypt_password(access_token)
    grant.access_token_expires_at = now + timedelta(seconds=expires_in)
    if refresh_token:
        grant.refresh_token_encrypted = encrypt_password(refresh_token)
    grant.last_refresh_at = now
    grant.refresh_count = (grant.refresh_count or 0) + 1
    grant.last_error = None
    grant.updated_at = now


def grant_of(session: Session, profile: MediaProfile) -> OAuthGrant | None:
    return session.scalars(select(OAuthGrant).where(OAuthGrant.media_profile_id == profile.id)).first()


def save_grant(session: Session, profile: MediaProfile, new: NewGrant) -> OAuthGrant:
    """Replace the profile's grant with ``new`` (a second ``connect`` starts afresh)."""
    grant = grant_of(session, profile)
    if grant is None:
        grant = OAuthGrant(media_profile_id=profile.id)
        session.add(grant)
    grant.provider, grant.flow = new.provider, new.flow
    grant.tenant, grant.client_id = new.tenant, new.client_id
    grant.client_secret_encrypted = _encrypted(new.client_secret)
    grant.refresh_token_encrypted = None
    grant.scopes = " ".join(new.scopes)
    grant.account = new.account
    grant.authority, grant.ca_file = new.authority, new.ca_file
    grant.refresh_count = 0
    record_token(grant, new.access_token, new.expires_in, new.refresh_token)
    session.flush()
    return grant


def delete_grant(session: Session, profile: MediaProfile) -> bool:
    grant = grant_of(session, profile)
    if grant is None:
        return False
    session.delete(grant)
    return True


def grant_status(grant: OAuthGrant) -> dict[str, Any]:
    """What ``oauth status`` shows: never a secret, only whether one is stored."""
    return {
        "provider": grant.provider,
        "flow": grant.flow,
        "tenant": grant.tenant,
        "client_id": grant.client_id,
        "account": grant.account,
        "scopes": grant.scopes.split(),
        "authority": grant.authority,
        "has_client_secret": grant.client_secret_encrypted is not None,
        "has_refresh_token": grant.refresh_token_encrypted is not None,
        "access_token_expires_at": grant.access_token_expires_at,
        "last_refresh_at": grant.last_refresh_at,
        "refreshes": grant.refresh_count,
        "last_error": grant.last_error,
    }
