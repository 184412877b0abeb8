"""Signed-in grants made without the sign-in ceremony, for tests about what happens afterwards."""

from __future__ import annotations

from typing import Any

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.oauth import NewGrant, save_grant
from postroom.core.data.profiles import get_profile
from postroom.plugins.oauth.microsoft import USER_SCOPES
from tests.servers.oauth_issuer import Client
from tests.servers.oauth_server import OAuthServer


def seed_device_code_grant(
    database_url: str, profile_name: str, oauth_server: OAuthServer, client: Client, user: str,
    *, expires_in: float | None = None,
) -> dict[str, Any]:
    """Store what ``oauth connect PROFILE --provider microsoft --flow device-code`` stores after ``user``
    signed in; ``expires_in=0`` stores a token that is already due for refresh. The token answer is returned."""
    answer = oauth_server.issuer.signed_in(client, user, " ".join(USER_SCOPES))
    app = Postroom(database_url)
    try:
        with app.transaction() as session:
            profile = get_profile(session, profile_name, DEFAULT_CONTACT_CENTER_ID)
            save_grant(
                session,
                profile,
                NewGrant(
                    provider="microsoft",
                    flow="device-code",
                    scopes=list(USER_SCOPES),
                    access_token=answer["access_token"],
                    expires_in=answer["expires_in"] if expires_in is None else expires_in,
                    tenant=client.tenant,
                    client_id=client.client_id,
                    refresh_token=answer["refresh_token"],
                    account=user,
                    authority=oauth_server.url,
                    ca_file=str(oauth_server.ca_file),
                ),
            )
    finally:
        app.dispose()
    return answer
