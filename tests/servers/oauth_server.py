"""A STAND-IN for the OAuth2 authorisation servers of Microsoft and Google, over HTTPS, once per test session.

Neither Microsoft's identity platform nor Google's can be reached from here, so this local server
implements the documented endpoints postroom's providers (MSAL, google-auth, google-auth-oauthlib)
call, with the checks the real ones make:

Microsoft identity platform shape (``{tenant}`` is the directory):
  - ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (MSAL's tenant discovery);
  - ``POST /{tenant}/oauth2/v2.0/token``: client credentials (client id and secret checked),
    refresh token (rotating: each refresh token is good once; a revoked grant answers
    ``invalid_grant``), device code (``authorization_pending`` until the test approves the user
    code), authorisation code with PKCE (``code_verifier`` checked against the S256 challenge and
    the ``redirect_uri`` against the authorisation request's);
  - ``POST /{tenant}/oauth2/v2.0/devicecode``, ``GET /{tenant}/oauth2/v2.0/authorize`` (the
    browser's page; tests "sign in" with :meth:`Issuer.sign_in` instead of a person);
  - ``GET /{tenant}/discovery/v2.0/keys`` (JWKS).
Google shape: ``GET /o/oauth2/auth`` (authorisation), ``POST /token`` (authorisation code with
PKCE, refresh token, and the JWT-bearer grant of a service account with domain-wide delegation:
the assertion's signature, audience and expiry are checked, its ``sub`` is the user acted for).
And ``POST /introspect`` (RFC 7662), which Dovecot's oauth2 passdb calls to check a bearer token.

Access tokens are RS256-signed JWTs (exp, iss, aud, tid, scp or roles, upn/email) whose lifetime a
test sets (``issuer.token_lifetime``). Every issuance is counted per client and grant, so tests can
assert one refresh per expiry; :meth:`Issuer.verify` lets other stand-ins check bearer tokens.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.servers.certs import Certificate
from tests.servers.oauth_issuer import Issuer, OAuthFault

HOST = "127.0.0.1"


class OAuthServer:
    """The running stand-in: its address, the CA file that trusts it, and its :class:`Issuer`."""

    def __init__(self, certificate: Certificate) -> None:
        self.certificate = certificate
        self.httpd = ThreadingHTTPServer((HOST, 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"https://{HOST}:{self.port}"
        self.issuer = Issuer(self.url)
        self.httpd.issuer = self.issuer  # type: ignore[attr-defined]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate.cert, certificate.key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="oauth-stand-in", daemon=True)

    @property
    def ca_file(self) -> Path:
        return self.certificate.cert

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def verify(self, token: str) -> dict[str, Any] | None:
        return self.issuer.verify(token)


def openid_configuration(base: str, tenant: str) -> dict[str, Any]:
    root = f"{base}/{tenant}"
    return {
        "issuer": f"{root}/v2.0",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "introspection_endpoint": f"{base}/introspect",
        "response_types_supported": ["code"],
        "grant_types_supported": ["client_credentials", "refresh_token", "authorization_code",
                                  "urn:ietf:params:oauth:grant-type:device_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "EU",
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read counts, not logs

    @property
    def issuer(self) -> Issuer:
        issuer: Issuer = self.server.issuer  # type: ignore[attr-defined]
        return issuer

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):  # client_secret_basic, as requests-oauthlib may send it
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            form.setdefault("client_id", unquote(user))
            form.setdefault("client_secret", unquote(password))
        return form

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.strip("/").split("/")
        if len(path) == 4 and path[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self._send(200, openid_configuration(self.issuer.base_url, path[0]))
        if len(path) == 4 and path[1:] == ["discovery", "v2.0", "keys"]:
            return self._send(200, {"keys": [self.issuer.public_jwk()]})
        if path[-1] in ("authorize", "auth"):
            # A person would sign in here; tests call Issuer.sign_in with the same address instead.
            return self._send(200, {"note": "stand-in authorisation page; tests sign in with Issuer.sign_in"})
        self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.strip("/").split("/")
        form = self._form()
        try:
            if path == ["introspect"]:
                return self._send(200, self.issuer.introspect(form.get("token", "")))
            if path == ["token"]:
                return self._send(200, self.issuer.token(None, form))
            if len(path) == 4 and path[1:3] == ["oauth2", "v2.0"] and path[3] == "token":
                return self._send(200, self.issuer.token(path[0], form))
            if len(path) == 4 and path[1:3] == ["oauth2", "v2.0"] and path[3] == "devicecode":
                return self._send(200, self.issuer.device_code(path[0], form))
        except OAuthFault as fault:
            return self._send(fault.status, {"error": fault.error, "error_description": fault.description})
        self._send(404, {"error": "not_found"})


@pytest.fixture(scope="session")
def oauth_server(certificate: Certificate) -> Iterator[OAuthServer]:
    """The OAuth2 stand-in for the whole session; tests register their own clients on its issuer."""
    server = OAuthServer(certificate)
    server.start()
    try:
        yield server
    finally:
        server.stop()
