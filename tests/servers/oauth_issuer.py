"""The token issuer behind the OAuth2 stand-in (tests/servers/oauth_server.py): clients, grants, signed tokens, counts.

Kept apart from the HTTP layer so that tests (and other stand-ins) can call it directly: register a
client, approve a device code, "sign in" on an authorisation URL, revoke a grant, count issuances,
and :meth:`Issuer.verify` a bearer token as a resource server would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class OAuthFault(Exception):
    """An RFC 6749 error answer: ``error`` code, description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


#: The application permissions an app is granted unless a test says otherwise (the roles of its tokens).
APP_ROLES = ("IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp", "Mail.ReadWrite", "Mail.Send")


@dataclass
class Client:
    client_id: str
    secret: str | None
    tenant: str
    roles: tuple[str, ...] = APP_ROLES


@dataclass
class Grant:
    """What a refresh token stands for; ``revoked`` makes every refresh answer ``invalid_grant``."""

    client_id: str
    user: str
    scopes: str
    revoked: bool = False
    #: When the access token issued with this refresh token expires.
    access_expires_at: float = 0.0


@dataclass
class DeviceAuth:
    client_id: str
    user_code: str
    scopes: str
    expires_at: float
    approved_user: str | None = None


@dataclass
class Issuance:
    """One access token handed out: to whom, by which grant, when, until when, from which refresh token."""

    client_id: str
    grant: str
    token: str
    at: float
    expires_at: float
    refresh_token_used: str | None = None
    #: For a refresh: how many seconds the token it replaces still had (a race shows as a large value).
    replaced_remaining: float | None = None


@dataclass
class ServiceAccount:
    client_email: str
    public_key: Any


@dataclass
class Issuer:
    """Clients, grants and tokens of the stand-in; thread-safe, since the server answers on threads."""

    base_url: str
    token_lifetime: int = 3600
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    clients: dict[str, Client] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    devices: dict[str, DeviceAuth] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    issued: list[Issuance] = field(default_factory=list)
    introspections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what tests set up -------------------------------------------------------------------

    def register_client(self, *, tenant: str = "contoso", public: bool = False) -> Client:
        client = Client(f"app-{uuid.uuid4().hex[:12]}", None if public else secrets.token_urlsafe(24), tenant)
        self.clients[client.client_id] = client
        return client

    def register_service_account(self) -> dict[str, str]:
        """A Google service-account key file's content (its private key stays with the caller)."""
        private = rsa.generate_private_key(65537, 2048)
        email = f"sa-{uuid.uuid4().hex[:8]}@project.iam.example.test"
        self.service_accounts[email] = ServiceAccount(email, private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": "project",
            "private_key_id": uuid.uuid4().hex,
            "private_key": pem,
            "client_email": email,
            "client_id": str(uuid.uuid4().int)[:21],
            "token_uri": f"{self.base_url}/token",
        }

    def approve(self, user_code: str, user: str) -> None:
        """The user signs in on the verification page and enters ``user_code``."""
        with self.lock:
            for device in self.devices.values():
                if device.user_code == user_code:
                    device.approved_user = user
                    return
        raise KeyError(user_code)

    def sign_in(self, authorize_url: str, user: str) -> str:
        """What the browser does on the authorisation page: the redirect address it is sent to, code included."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        client = self.clients.get(query.get("client_id", ""))
        if client is None or query.get("response_type") != "code":
            raise OAuthFault("unauthorized_client", "Unknown client or response type.")
        redirect = query.get("redirect_uri", "")
        if urlsplit(redirect).hostname not in ("127.0.0.1", "localhost", "[::1]"):
            raise OAuthFault("invalid_request", "Only a loopback redirect is allowed for this client.")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            raise OAuthFault("invalid_request", "PKCE with S256 is required.")
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "client_id": client.client_id,
            "redirect_uri": redirect,
            "challenge": query["code_challenge"],
            "scopes": query.get("scope", ""),
            "user": user,
        }
        return f"{redirect}?{urlencode({'code': code, 'state': query.get('state', ''), 'scope': query.get('scope', '')})}"

    def signed_in(self, client: Client, user: str, scopes: str) -> dict[str, Any]:
        """The token answer a device-code or browser sign-in of ``user`` ends with, without the ceremony
        (for tests about what happens after a sign-in); counted as grant ``sign_in``."""
        with self.lock:
            return self._answer(client, "sign_in", user, scopes)

    def refreshes(self, client_id: str) -> list[Issuance]:
        with self.lock:
            return [i for i in self.issued if i.client_id == client_id and i.grant == "refresh_token"]

    def revoke(self, user: str) -> None:
        """Revoke every grant of ``user`` (an administrator removed consent, a password was reset)."""
        with self.lock:
            for grant in self.grants.values():
                if grant.user == user:
                    grant.revoked = True

    def count(self, client_id: str, grant: str | None = None) -> int:
        with self.lock:
            return sum(1 for i in self.issued if i.client_id == client_id and grant in (None, i.grant))

    def counts(self) -> Counter[tuple[str, str]]:
        with self.lock:
            return Counter((i.client_id, i.grant) for i in self.issued)

    # --- tokens ------------------------------------------------------------------------------

    def issuer_of(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/v2.0"

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def _access_token(
        self, client_id: str, tenant: str, user: str | None, scopes: str, roles: tuple[str, ...] | None
    ) -> tuple[str, float]:
        now = time.time()
        expires = now + self.token_lifetime
        first = urlsplit(scopes.split()[0]) if scopes.split() else urlsplit("")
        claims: dict[str, Any] = {
            "iss": self.issuer_of(tenant),
            "aud": f"{first.scheme}://{first.netloc}" if first.netloc else "api",
            "tid": tenant,
            "appid": client_id,
            "iat": int(now),
            "nbf": int(now),
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        if roles is not None:  # an application's token carries the permissions it was granted
            claims["roles"] = list(roles)
        else:
            claims["scp"] = " ".join(s.rsplit("/", 1)[-1] for s in scopes.split())
        if user:
            claims.update(upn=user, email=user, sub=user)
        return jwt.encode(claims, self.key, "RS256", headers={"kid": self.kid}), expires

    def _id_token(self, client_id: str, tenant: str, user: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer_of(tenant), "aud": client_id, "sub": user, "oid": user, "tid": tenant,
            "preferred_username": user, "email": user, "iat": now, "nbf": now, "exp": now + 3600,
        }
        return jwt.encode(claims, self.key, "RS256", headers={"kid": self.kid})

    def _answer(
        self, client: Client, grant_name: str, user: str | None, scopes: str, *, app: bool = False,
        refresh_used: str | None = None, keep_refresh: bool = True, replaced_remaining: float | None = None,
    ) -> dict[str, Any]:
        token, expires = self._access_token(client.client_id, client.tenant, user, scopes, client.roles if app else None)
        answer: dict[str, Any] = {
            "token_type": "Bearer", "access_token": token, "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime, "scope": scopes,
        }
        if user is not None and keep_refresh:
            refresh = secrets.token_urlsafe(32)
            self.grants[refresh] = Grant(client.client_id, user, scopes, access_expires_at=expires)
            answer["refresh_token"] = refresh
            answer["id_token"] = self._id_token(client.client_id, client.tenant, user)
            info = {"uid": user, "utid": client.tenant}
            answer["client_info"] = base64.urlsafe_b64encode(jsonb(info)).decode().rstrip("=")
        self.issued.append(
            Issuance(client.client_id, grant_name, token, time.time(), expires, refresh_used, replaced_remaining)
        )
        return answer

    def token(self, tenant: str | None, form: dict[str, str]) -> dict[str, Any]:
        """The token endpoint: one grant by ``grant_type``; raises :class:`OAuthFault` as the real one answers."""
        grant_type = form.get("grant_type", "")
        with self.lock:
            if grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return self._jwt_bearer(form)
            client = self.clients.get(form.get("client_id", ""))
            if client is None or (tenant not in (None, client.tenant, "common", "organizations")):
                raise OAuthFault("invalid_client", "AADSTS700016: Application not found in the directory.", 401)
            confidential = client.secret is not None and grant_type != "urn:ietf:params:oauth:grant-type:device_code"
            if confidential and not secrets.compare_digest(form.get("client_secret", ""), client.secret or ""):
                raise OAuthFault("invalid_client", "AADSTS7000215: Invalid client secret provided.", 401)
            scopes = _plain_scopes(form.get("scope", ""))
            if grant_type == "client_credentials":
                if not scopes.endswith("/.default") or len(scopes.split()) != 1:
                    raise OAuthFault("invalid_scope", "AADSTS1002012: The scope requested must be one RESOURCE/.default.")
                return self._answer(client, "client_credentials", None, scopes, app=True)
            if grant_type == "refresh_token":
                used = form.get("refresh_token", "")
                grant = self.grants.get(used)
                if grant is None or grant.revoked or grant.client_id != client.client_id:
                    raise OAuthFault("invalid_grant", "AADSTS70000: The refresh token was revoked or has expired.")
                grant.revoked = True  # rotating: a refresh token is good for one use
                return self._answer(
                    client, "refresh_token", grant.user, scopes or grant.scopes, refresh_used=used,
                    replaced_remaining=grant.access_expires_at - time.time(),
                )
            if grant_type in ("urn:ietf:params:oauth:grant-type:device_code", "device_code"):
                device = self.devices.get(form.get("device_code", ""))
                if device is None or device.client_id != client.client_id or device.expires_at < time.time():
                    raise OAuthFault("expired_token", "The device code expired.")
                if device.approved_user is None:
                    raise OAuthFault("authorization_pending", "The user has not signed in yet.")
                del self.devices[form["device_code"]]
                return self._answer(client, "device_code", device.approved_user, device.scopes)
            if grant_type == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                if code is None or code["client_id"] != client.client_id:
                    raise OAuthFault("invalid_grant", "The authorisation code is unknown or used.")
                if form.get("redirect_uri") != code["redirect_uri"]:
                    raise OAuthFault("invalid_grant", "The redirect_uri differs from the authorisation request's.")
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if not verifier or digest != code["challenge"]:
                    raise OAuthFault("invalid_grant", "The PKCE code_verifier does not match the challenge.")
                return self._answer(client, "authorization_code", code["user"], code["scopes"])
        raise OAuthFault("unsupported_grant_type", f"Grant type {grant_type!r} is not supported.")

    def _jwt_bearer(self, form: dict[str, str]) -> dict[str, Any]:
        """A service account's signed assertion (Google): checked signature, audience, expiry; ``sub`` impersonated."""
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            account = self.service_accounts[unverified["iss"]]
            # Google's token endpoint wants its own address as the audience, which google-auth always sends.
            audience = [f"{self.base_url}/token", "https://oauth2.googleapis.com/token"]
            claims = jwt.decode(assertion, account.public_key, ["RS256"], audience=audience)
        except (KeyError, jwt.PyJWTError) as error:
            raise OAuthFault("invalid_grant", f"Invalid JWT assertion: {error}.") from error
        client = Client(account.client_email, None, "google")
        user = claims.get("sub")
        return self._answer(client, "jwt_bearer", user, claims.get("scope", ""), app=user is None, keep_refresh=False)

    def device_code(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        client = self.clients.get(form.get("client_id", ""))
        if client is None or tenant not in (client.tenant, "common", "organizations"):
            raise OAuthFault("invalid_client", "AADSTS700016: Application not found in the directory.", 401)
        device_code, user_code = secrets.token_urlsafe(24), secrets.token_hex(4).upper()
        with self.lock:
            self.devices[device_code] = DeviceAuth(
                client.client_id, user_code, _plain_scopes(form.get("scope", "")), time.time() + 900
            )
        url = f"{self.base_url}/devicelogin"
        return {
            "device_code": device_code, "user_code": user_code, "verification_uri": url,
            "expires_in": 900, "interval": 1,
            "message": f"To sign in, open {url} and enter the code {user_code} to authenticate.",
        }

    def verify(self, token: str) -> dict[str, Any] | None:
        """The token's claims when this issuer signed it and it has not expired, else None."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key.public_key(), ["RS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return None
        return claims if str(claims.get("iss", "")).startswith(self.base_url) else None

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: ``active`` and, when active, the token's claims (Dovecot reads ``email``)."""
        with self.lock:
            self.introspections += 1
        claims = self.verify(token)
        return {"active": False} if claims is None else {"active": True, **claims}


def _plain_scopes(scope: str) -> str:
    """The scopes asked for, less the OpenID ones MSAL adds by itself."""
    return " ".join(s for s in scope.split() if s not in ("openid", "profile", "offline_access"))


def jsonb(value: Any) -> bytes:
    return json.dumps(value).encode()
