"""The ``microsoft`` token provider: Microsoft Entra ID (Microsoft 365) through MSAL for Python.

MSAL is Microsoft's own, well-kept client for the identity platform (authority discovery, the
device-code polling rules, token requests); it is imported only when a token is obtained.

Flows:
  - ``client-credentials``: an application's own token (application permissions such as
    IMAP.AccessAsApp, SMTP.SendAsApp, Mail.ReadWrite); the secret is stored encrypted and a new
    token asked for when the cached one runs out.
  - ``device-code``: a user signs in on another device with a code; the refresh token is kept
    (encrypted) and redeemed, rotated, before each expiry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

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

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
#: Microsoft's own hosts, where MSAL validates the authority and discovers the instance as usual.
KNOWN_HOSTS = {
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
}
#: Application permissions come as one ".default" scope per resource (Exchange Online here).
APP_SCOPES = ["https://outlook.office365.com/.default"]
#: Delegated scopes for IMAP, POP and SMTP AUTH; MSAL adds offline_access (the refresh token) itself.
USER_SCOPES = [
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
]
#: A profile that fetches or sends through Microsoft Graph (the ``graph`` protocol) needs Graph's tokens.
GRAPH_APP_SCOPES = ["https://graph.microsoft.com/.default"]
GRAPH_USER_SCOPES = ["https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Mail.Send"]
#: Errors that mean the grant itself is gone: sign in again.
REVOKED_ERRORS = {"invalid_grant", "invalid_client", "unauthorized_client", "interaction_required"}


def _reason(result: dict[str, Any]) -> str:
    """The error code and the first sentence of its description (Entra appends trace ids and times)."""
    description = str(result.get("error_description") or "").split("\r\n")[0].split(". ")[0].rstrip(".")
    return f"{result.get('error')}: {description}" if description else str(result.get("error"))


class Microsoft(TokenProvider):
    NAME = "microsoft"
    TITLE = "Microsoft"
    FLOWS = ("client-credentials", "device-code")
    DELEGATED = ("device-code",)

    def default_scopes(self, flow: str, protocols: frozenset[str] = frozenset()) -> list[str]:
        # A token is for one resource: Graph's when the profile uses Graph, else Exchange Online's.
        if "graph" in protocols:
            return list(GRAPH_APP_SCOPES if flow == "client-credentials" else GRAPH_USER_SCOPES)
        return list(APP_SCOPES if flow == "client-credentials" else USER_SCOPES)

    def _app(self, grant: Grant) -> Any:
        import msal

        authority = f"{(grant.authority or DEFAULT_AUTHORITY).rstrip('/')}/{grant.tenant or 'organizations'}"
        # Another host (a national cloud proxy, the tests' stand-in) is not in Microsoft's instance
        # list: MSAL must then take the authority as given and read its OpenID configuration.
        known = urlsplit(authority).hostname in KNOWN_HOSTS
        options: dict[str, Any] = {
            "authority": authority,
            "http_client": http_session(grant.ca_file),
            "validate_authority": known,
            "instance_discovery": known,
            "timeout": 30,
        }
        try:
            if grant.flow == "client-credentials":
                return msal.ConfidentialClientApplication(
                    grant.client_id, client_credential=grant.client_secret, **options
                )
            return msal.PublicClientApplication(grant.client_id, **options)
        except ValueError as error:  # MSAL's word for an authority it cannot use
            raise ProviderUnreachable(f"the authority {authority} cannot be used: {error}") from error
        except Exception as error:  # requests' connection errors during the tenant discovery
            raise ProviderUnreachable(f"{type(error).__name__} reaching {authority}") from error

    def refresh(self, grant: Grant) -> Issued:
        app = self._app(grant)
        try:
            if grant.flow == "client-credentials":
                result = app.acquire_token_for_client(scopes=grant.scopes)
            else:
                result = app.acquire_token_by_refresh_token(grant.refresh_token, scopes=grant.scopes)
        except Exception as error:  # requests' connection and TLS errors
            raise ProviderUnreachable(f"{type(error).__name__} reaching {grant.authority or DEFAULT_AUTHORITY}") from error
        return self._issued(result)

    def _issued(self, result: dict[str, Any]) -> Issued:
        if "access_token" not in result:
            if result.get("error") in REVOKED_ERRORS:
                raise GrantRevoked(_reason(result))
            raise ProviderUnreachable(_reason(result))
        claims = result.get("id_token_claims") or {}
        return Issued(
            access_token=result["access_token"],
            expires_in=float(result.get("expires_in") or 3600),
            refresh_token=result.get("refresh_token"),
            account=claims.get("preferred_username") or claims.get("upn") or claims.get("email"),
        )

    def connect(self, grant: Grant, say: Say, open_browser: bool = False, loopback_port: int = 0) -> Issued:
        if grant.flow == "client-credentials":
            if not grant.tenant:
                raise UserError("An application signs in to one directory: give it with --tenant.")
            try:
                return self.refresh(grant)
            except (GrantRevoked, ProviderUnreachable) as error:
                raise UserError(f"Microsoft refused the application's sign-in: {error}.") from error
        app = self._app(grant)
        try:
            flow = app.initiate_device_flow(scopes=grant.scopes)
            if "user_code" not in flow:
                raise UserError(f"Microsoft refused to start the device sign-in: {_reason(flow)}.")
            say(f"To sign in, open {flow['verification_uri']} and enter the code {flow['user_code']}")
            result = app.acquire_token_by_device_flow(flow)
        except UserError:
            raise
        except Exception as error:
            raise UserError(f"The Microsoft sign-in failed: {type(error).__name__}: {error}.") from error
        try:
            return self._issued(result)
        except (GrantRevoked, ProviderUnreachable) as error:
            raise UserError(f"The Microsoft sign-in failed: {error}.") from error


PROVIDER = Microsoft()


@hookimpl
def postroom_get_access_token(profile: MediaProfile) -> str | None:
    return store.access_token(profile, PROVIDER)
