"""A profile's grant in the database: saved by ``oauth connect``, read and refreshed by the providers.

Refresh coordination: the cached access token is read without a lock and used while it has more
than a margin of its life left. Otherwise the grant's row is locked (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite a no-op ``UPDATE`` first, which takes the database's write lock) in a short
transaction of its own, the expiry checked again, and only then the provider asked: a worker that
waited on the lock finds the token its neighbour just stored and uses it. So several workers
refresh a token once per expiry, never once each.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, object_session

from postroom.core.data.models import MediaProfile, OAuthGrant, utcnow
from postroom.core.data.oauth import record_token
from postroom.core.data.secrets import decrypt_password
from postroom.plugins.oauth.base import (
    Grant,
    GrantRevoked,
    Issued,
    ProviderUnreachable,
    TokenProvider,
    TokenUnavailable,
)

log = logging.getLogger(__name__)

#: A token is refreshed when less than this share of its lifetime is left, and at most this long before:
#: the margin covers the time between handing a token out and the server checking it (a TLS handshake).
MARGIN_SHARE = 0.25
MAX_MARGIN = timedelta(minutes=5)
#: ``session.info`` key of the grants read in the session's current transaction.
_GRANTS = "postroom.oauth.grants"


def _engine(profile: MediaProfile) -> Engine:
    session = object_session(profile)
    if session is None:
        raise TokenUnavailable(f"Profile {profile.name!r} was not loaded from a database; no token can be had.", "internal")
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _fresh(grant: OAuthGrant, now: datetime) -> bool:
    """Whether the cached token has more than the margin of its life left."""
    expires = grant.access_token_expires_at
    if grant.access_token_encrypted is None or expires is None:
        return False
    issued = grant.last_refresh_at or expires
    margin = min(MAX_MARGIN, (expires - issued) * MARGIN_SHARE)
    return expires - margin > now


def reconnect_hint(profile_name: str, grant: OAuthGrant | Grant) -> str:
    return f"postroom oauth connect {profile_name} --provider {grant.provider} --flow {grant.flow}"


def clear_grant(grant: OAuthGrant) -> Grant:
    """The grant with its secrets decrypted, for the provider."""
    return Grant(
        profile_name="",
        provider=grant.provider,
        flow=grant.flow,
        scopes=grant.scopes.split(),
        tenant=grant.tenant,
        client_id=grant.client_id,
        client_secret=decrypt_password(grant.client_secret_encrypted),
        refresh_token=decrypt_password(grant.refresh_token_encrypted),
        account=grant.account,
        authority=grant.authority,
        ca_file=grant.ca_file,
    )


def store_issued(grant: OAuthGrant, issued: Issued) -> None:
    record_token(grant, issued.access_token, issued.expires_in, issued.refresh_token)
    if issued.account:
        grant.account = issued.account


def access_token(profile: MediaProfile, provider: TokenProvider) -> str | None:
    """The profile's access token from ``provider``; None when the profile's grant is another's (or none)."""
    engine = _engine(profile)
    # Read in the profile's own session (its open transaction), not a new one: a fetch cycle asks
    # every provider for every profile, and a transaction each made an empty cycle cost two more.
    session = object_session(profile)
    assert session is not None  # _engine checked it
    grant = _grant(session, profile.id)
    if grant is None or grant.provider != provider.NAME:
        return None
    if _fresh(grant, utcnow()):
        return decrypt_password(grant.access_token_encrypted)
    return _refresh_locked(engine, profile, provider)


def _grant(session: Session, profile_id: int) -> OAuthGrant | None:
    """The profile's grant, read once per transaction of ``session`` for all providers that ask."""
    transaction = session.get_transaction()
    cached = session.info.get(_GRANTS)
    if cached is None or cached[0] is not transaction:
        cached = session.info[_GRANTS] = (transaction, {})
    grants: dict[int, OAuthGrant | None] = cached[1]
    if profile_id not in grants:
        grants[profile_id] = session.scalars(
            select(OAuthGrant)
            .where(OAuthGrant.media_profile_id == profile_id)
            .execution_options(populate_existing=True)
        ).first()
    return grants[profile_id]


def _refresh_locked(engine: Engine, profile: MediaProfile, provider: TokenProvider) -> str:
    failure: TokenUnavailable | None = None
    with Session(engine) as session, session.begin():
        where = OAuthGrant.media_profile_id == profile.id
        if engine.dialect.name == "sqlite":
            # SQLite has no row locks: a write takes the database's, which serialises refreshers.
            session.execute(update(OAuthGrant).where(where).values(refresh_count=OAuthGrant.refresh_count))
        grant = session.scalars(select(OAuthGrant).where(where).with_for_update()).one()
        if _fresh(grant, utcnow()):  # a neighbour refreshed while we waited for the lock
            return decrypt_password(grant.access_token_encrypted) or ""
        clear = clear_grant(grant)
        clear.profile_name = profile.name
        if grant.flow in provider.DELEGATED and clear.refresh_token is None:
            # Refused before: the same sentence again, without asking the server about a dead token.
            failure = (
                TokenUnavailable(grant.last_error)
                if grant.last_error
                else _revoked(profile, grant, "no refresh token is stored")
            )
        else:
            try:
                issued = provider.refresh(clear)
            except GrantRevoked as error:
                failure = _revoked(profile, grant, str(error))
                if grant.flow in provider.DELEGATED:
                    grant.refresh_token_encrypted = None  # useless now; no need to ask again
                grant.access_token_encrypted = None
            except ProviderUnreachable as error:
                failure = TokenUnavailable(
                    f"No {provider.TITLE} access token could be had for profile {profile.name!r}: {error}.",
                    "connection",
                )
                expires = grant.access_token_expires_at
                if grant.access_token_encrypted is not None and expires is not None and expires > utcnow():
                    # The server is away but the token still works: use it, and try again next time.
                    log.warning("%s; the current token is used until it expires", failure)
                    grant.last_error = str(failure)
                    return decrypt_password(grant.access_token_encrypted) or ""
            else:
                store_issued(grant, issued)
                log.info("profile %s: %s access token refreshed", profile.name, provider.NAME)
                return issued.access_token
        grant.last_error = str(failure)
        grant.updated_at = utcnow()
    raise failure


def _revoked(profile: MediaProfile, grant: OAuthGrant, reason: str) -> TokenUnavailable:
    reason = reason.rstrip(". ")
    return TokenUnavailable(
        f"The {grant.provider} sign-in of profile {profile.name!r} is no longer valid ({reason}); "
        f"run '{reconnect_hint(profile.name, grant)} ...' again."
    )
