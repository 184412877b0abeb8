"""The OAuth2 stand-in refuses what the real authorisation servers refuse, so the providers' tests mean
something: a wrong PKCE verifier or redirect address, a reused (rotated) or revoked refresh token, a
wrong client secret, a pending device code; and its tokens verify with its published keys."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from tests.servers.oauth_server import OAuthServer


@pytest.fixture
def http(oauth_server: OAuthServer) -> Iterator[requests.Session]:
    session = requests.Session()
    session.verify, session.trust_env = str(oauth_server.ca_file), False
    yield session
    session.close()


def _token(http: requests.Session, url: str, **form: str) -> tuple[int, dict[str, Any]]:
    response = http.post(url, data=form, timeout=10)
    return response.status_code, response.json()


def test_authorisation_code_needs_the_pkce_verifier_and_the_same_redirect(
    oauth_server: OAuthServer, http: requests.Session
) -> None:
    issuer, token_url = oauth_server.issuer, f"{oauth_server.url}/token"
    client = issuer.register_client()
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = {
        "client_id": client.client_id, "response_type": "code", "redirect_uri": "http://127.0.0.1:5000/",
        "scope": "https://mail.google.com/", "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256",
    }

    def code() -> str:
        redirect = issuer.sign_in(f"{oauth_server.url}/o/oauth2/auth?{urlencode(query)}", "ann@example.test")
        return parse_qs(urlsplit(redirect).query)["code"][0]

    base = {"grant_type": "authorization_code", "client_id": client.client_id, "client_secret": client.secret or ""}
    status, body = _token(http, token_url, **base, code=code(), redirect_uri=query["redirect_uri"], code_verifier="w" * 50)
    assert (status, body["error"]) == (400, "invalid_grant") and "PKCE" in body["error_description"]
    status, body = _token(http, token_url, **base, code=code(), redirect_uri="http://127.0.0.1:5001/", code_verifier=verifier)
    assert (status, body["error"]) == (400, "invalid_grant") and "redirect_uri" in body["error_description"]
    status, body = _token(http, token_url, **base, code=code(), redirect_uri=query["redirect_uri"], code_verifier=verifier)
    assert status == 200 and oauth_server.verify(body["access_token"])["email"] == "ann@example.test"  # type: ignore[index]

    # The refresh token rotates: the first use works, the second is refused, as is any after a revocation.
    refresh = {**base, "grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    status, again = _token(http, token_url, **refresh)
    assert status == 200
    assert _token(http, token_url, **refresh)[1]["error"] == "invalid_grant"
    issuer.revoke("ann@example.test")
    assert _token(http, token_url, **{**refresh, "refresh_token": again["refresh_token"]})[1]["error"] == "invalid_grant"


def test_client_credentials_device_code_and_keys(oauth_server: OAuthServer, http: requests.Session) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client(tenant="fabrikam")
    token_url = f"{oauth_server.url}/fabrikam/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": client.client_id, "scope": "https://outlook.office365.com/.default"}
    status, body = _token(http, token_url, **form, client_secret="wrong")
    assert (status, body["error"]) == (401, "invalid_client")
    status, body = _token(http, f"{oauth_server.url}/contoso/oauth2/v2.0/token", **form, client_secret=client.secret or "")
    assert (status, body["error"]) == (401, "invalid_client")  # another tenant does not know the app
    status, body = _token(http, token_url, **form, client_secret=client.secret or "")
    assert status == 200

    config = http.get(f"{oauth_server.url}/fabrikam/v2.0/.well-known/openid-configuration", timeout=10).json()
    keys = http.get(config["jwks_uri"], timeout=10).json()["keys"]
    claims = jwt.decode(body["access_token"], jwt.PyJWK(keys[0]).key, ["RS256"], audience="https://outlook.office365.com")
    assert claims["iss"] == config["issuer"] and claims["tid"] == "fabrikam" and "Mail.ReadWrite" in claims["roles"]

    device = http.post(config["device_authorization_endpoint"], data={"client_id": client.client_id, "scope": "x"}, timeout=10).json()
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": client.client_id, "device_code": device["device_code"]}
    assert _token(http, token_url, **poll)[1]["error"] == "authorization_pending"
    issuer.approve(device["user_code"], "bob@example.test")
    status, body = _token(http, token_url, **poll)
    assert status == 200 and body["refresh_token"]

    introspect = f"{oauth_server.url}/introspect"
    assert http.post(introspect, data={"token": body["access_token"]}, timeout=10).json()["upn"] == "bob@example.test"
    assert http.post(introspect, data={"token": body["access_token"] + "x"}, timeout=10).json() == {"active": False}
