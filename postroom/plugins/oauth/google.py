"""The ``google`` token provider: Google Workspace and Gmail through google-auth and google-auth-oauthlib.

Google's own libraries do the protocol (the loopback redirect with PKCE, the service account's
signed assertion); they are imported only when a token is obtained.

Flows:
  - ``installed-app``: a user signs in in a browser; the answer comes back to a loopback address
    this process listens on, and the refresh token is kept (encrypted).
  - ``service-account``: a Workspace service account with domain-wide delegation acts as the
    mailbox (``--account``), with its key file stored encrypted; no refresh token.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from postroom import hookimpl
from postroom.core.contract.errors import UserError
from postroom.core.data.models import MediaProfile
from postroom.plugins.oauth import store
from postroom.plugins.oauth.base import (
    Grant,
    GrantRevoked,
    Issued,
    ProviderUnreachable,
    Say,
    TokenProvider,
    http_session,
)

AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
TOKEN_URI = "https://oauth2.googleapis.com/token"
#: The one scope Gmail's IMAP, POP and SMTP accept.
MAIL_SCOPES = ["https://mail.google.com/"]


def _endpoints(grant: Grant) -> tuple[str, str]:
    if not grant.authority:
        return AUTH_URI, TOKEN_URI
    base = grant.authority.rstrip("/")
    return f"{base}/o/oauth2/auth", f"{base}/token"


def _expires_in(expiry: datetime | None) -> float:
    """google-auth keeps the expiry as a naive UTC datetime."""
    if expiry is None:
        return 3600.0
    return max(0.0, (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds())


def _email_of(id_token: str | None) -> str | None:
    """Who signed in, for ``oauth status`` only (the token came straight from the token endpoint over TLS)."""
    if not id_token:
        return None
    import jwt

    try:
        email = jwt.decode(id_token, options={"verify_signature": False}).get("email")
    except jwt.PyJWTError:
        return None
    return str(email) if email else None


class Google(TokenProvider):
    NAME = "google"
    TITLE = "Google"
    FLOWS = ("installed-app", "service-account")
    DELEGATED = ("installed-app",)

    def default_scopes(self, flow: str, protocols: frozenset[str] = frozenset()) -> list[str]:
        return list(MAIL_SCOPES)

    def refresh(self, grant: Grant) -> Issued:
        from google.auth import exceptions
        from google.auth.transport.requests import Request

        credentials = self._credentials(grant)
        try:
            credentials.refresh(Request(http_session(grant.ca_file)))
        except exceptions.RefreshError as error:
            details = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else {}
            code = details.get("error") or str(error.args[0] if error.args else error).split(":")[0]
            text = str(details.get("error_description") or "").split(". ")[0].rstrip(".")
            reason = f"{code}: {text}" if text else str(code)
            if code in ("invalid_grant", "invalid_client", "unauthorized_client"):
                raise GrantRevoked(reason) from error
            raise ProviderUnreachable(reason) from error
        except exceptions.TransportError as error:
            raise ProviderUnreachable(f"the token endpoint {_endpoints(grant)[1]} could not be reached") from error
        return Issued(
            access_token=credentials.token,
            expires_in=_expires_in(credentials.expiry),
            refresh_token=getattr(credentials, "refresh_token", None),
            account=grant.account,
        )

    def _credentials(self, grant: Grant) -> Any:
        _auth, token_uri = _endpoints(grant)
        if grant.flow == "service-account":
            from google.oauth2 import service_account

            try:
                info = json.loads(grant.client_secret or "")
                info["token_uri"] = token_uri
                return service_account.Credentials.from_service_account_info(
                    info, scopes=grant.scopes, subject=grant.account
                )
            except (ValueError, KeyError) as error:
                raise GrantRevoked(f"the stored service-account key cannot be used: {error}") from error
        from google.oauth2.credentials import Credentials

        return Credentials(
            token=None,
            refresh_token=grant.refresh_token,
            token_uri=token_uri,
            client_id=grant.client_id,
            client_secret=grant.client_secret,
            scopes=grant.scopes,
        )

    def connect(self, grant: Grant, say: Say, open_browser: bool = False, loopback_port: int = 0) -> Issued:
        if grant.flow == "service-account":
            if not grant.account:
                raise UserError("A service account acts as a mailbox: give it with --account.")
            try:
                return self.refresh(grant)
            except (GrantRevoked, ProviderUnreachable) as error:
                raise UserError(f"Google refused the service account's sign-in: {error}.") from error
        return self._installed_app(grant, say, open_browser, loopback_port)

    def _installed_app(self, grant: Grant, say: Say, open_browser: bool, port: int) -> Issued:
        from google_auth_oauthlib.flow import InstalledAppFlow

        auth_uri, token_uri = _endpoints(grant)
        config = {
            "installed": {
                "client_id": grant.client_id,
                "client_secret": grant.client_secret,
                "auth_uri": auth_uri,
                "token_uri": token_uri,
                "redirect_uris": ["http://127.0.0.1"],
            }
        }
        flow = InstalledAppFlow.from_client_config(config, scopes=grant.scopes)
        session = flow.oauth2session
        if grant.ca_file:  # see http_session: the environment must not override the CA file
            session.verify = grant.ca_file
            session.trust_env = False
        say("Waiting for the browser to come back to this computer (a loopback address) after the sign-in.")
        try:
            credentials = flow.run_local_server(
                host="127.0.0.1",
                port=port,
                open_browser=open_browser,
                authorization_prompt_message="To sign in, open this address in a browser: {url}",
                success_message="postroom is signed in; you may close this window.",
                timeout_seconds=600,
                access_type="offline",
                prompt="consent",
            )
        except Exception as error:  # oauthlib's and requests' errors, the loopback's timeout
            raise UserError(f"The Google sign-in failed: {type(error).__name__}: {error}.") from error
        if not credentials.refresh_token:
            raise UserError("Google returned no refresh token; remove postroom's access in the account and sign in again.")
        return Issued(
            access_token=credentials.token,
            expires_in=_expires_in(credentials.expiry),
            refresh_token=credentials.refresh_token,
            account=_email_of(getattr(credentials, "id_token", None)) or grant.account,
        )


PROVIDER = Google()


@hookimpl
def postroom_get_access_token(profile: MediaProfile) -> str | None:
    return store.access_token(profile, PROVIDER)
