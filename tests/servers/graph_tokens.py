"""Bearer tokens for the Graph STAND-IN: RS256 JWTs shaped like Microsoft Entra ID's, and their check.

The graph tests that are not about signing in sign tokens here with one RSA key per test session
(kept in a file named by ``$POSTROOM_TEST_GRAPH_KEY``, so that forked workers sign with it too); the
session's Graph stand-in (``graph_server``) is given :func:`verify_token` as its check. Tokens from
the OAuth2 stand-in, as the ``microsoft`` provider gets them, are checked by another instance,
``graph_oauth_server`` (tests/servers/graph_server.py).

This module is also a postroom plugin (``postroom_get_access_token``): registered as an extra
plugin, it gives every profile an app-only token (client credentials: ``roles``, no ``scp``).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from postroom.core.contract.hooks import hookimpl

if TYPE_CHECKING:
    from postroom.core.data.models import MediaProfile

KEY_ENV = "POSTROOM_TEST_GRAPH_KEY"
AUDIENCE = "https://graph.microsoft.com"
ISSUER = "https://login.stand-in.test/tenant-0001/v2.0"
APP_ROLES = ["Mail.ReadWrite", "Mail.Send"]
KEY_ID = "graph-stand-in-key"

_keys: dict[str, rsa.RSAPrivateKey] = {}


def write_key(path: Path) -> None:
    """Make the session's signing key and name its file in ``$POSTROOM_TEST_GRAPH_KEY``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.environ[KEY_ENV] = str(path)


def _key() -> rsa.RSAPrivateKey:
    path = os.environ[KEY_ENV]
    if path not in _keys:
        loaded = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        _keys[path] = loaded
    return _keys[path]


def mint(
    *,
    audience: str = AUDIENCE,
    lifetime: float = 3600,
    roles: list[str] | None = None,
    user: str | None = None,
    scopes: str | None = None,
) -> str:
    """A signed access token: app-only (``roles``) unless ``user`` and ``scopes`` make it delegated."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + int(lifetime),
        "tid": "tenant-0001",
        "appid": "postroom-tests",
        "jti": uuid.uuid4().hex,
    }
    if user is not None:
        claims.update(upn=user, scp=scopes or "Mail.ReadWrite Mail.Send")
    else:
        claims["roles"] = APP_ROLES if roles is None else roles
    return jwt.encode(claims, _key(), algorithm="RS256", headers={"kid": KEY_ID})


def verify_token(token: str) -> dict[str, Any] | None:
    """The claims of a token signed with the session's key for Graph and not expired; else None."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, _key().public_key(), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER
        )
    except jwt.PyJWTError:
        return None
    return claims


@hookimpl
def postroom_get_access_token(profile: MediaProfile) -> str | None:
    """An app-only Graph token for every ``graph`` profile (what client credentials would give)."""
    if "graph" in (profile.fetch_protocol, profile.send_protocol):
        return mint()
    return None
