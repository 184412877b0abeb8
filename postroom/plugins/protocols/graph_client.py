"""How the ``graph`` protocol talks to Microsoft Graph: one HTTPS session, a bearer token, Graph's errors.

The client is plain ``requests`` (already installed for exchangelib), not msgraph-sdk: postroom
needs six REST calls and raw MIME in and out, and the SDK's generated models, async kiota stack and
its own retry handler (which would sleep through a 120 s ``Retry-After`` inside a send) would cost
more than they give. TLS is verified with requests' CA bundle (``REQUESTS_CA_BUNDLE`` is honoured,
as for EWS) unless the profile switches verification off.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from postroom.core.contract.protocols import FailureKind
from postroom.plugins.protocols.base import ConnectionSettings, ProtocolError, connection_failure
from postroom.plugins.protocols.http_errors import network_cause

log = logging.getLogger(__name__)

DEFAULT_HOST = "graph.microsoft.com"
#: Every id Graph hands out to this client is an immutable id: it survives a move between folders,
#: so a mail's fetch-ledger key never changes (Graph's default ids change when a mail moves).
IMMUTABLE_IDS = 'IdType="ImmutableId"'
#: A throttled read waits in place when Graph asks for at most this long, at most this many times;
#: a longer wait fails the cycle (the worker retries the profile later). A send never waits here:
#: the outbox schedules its retry (``SendFailure.retry_after``).
READ_WAIT_LIMIT = 10.0
READ_RETRIES = 3
THROTTLED = (429, 503)


class GraphError(Exception):
    """A failed Graph call: the HTTP status, Graph's error code and message, and a requested wait."""

    def __init__(
        self, status: int, code: str, message: str, kind: FailureKind, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message
        self.kind: FailureKind = kind
        self.retry_after = retry_after


def base_url(settings: ConnectionSettings) -> str:
    """``https://HOST[:PORT]/v1.0``: the profile's host (a name or an https URL), Graph's by default."""
    host = (settings.host or DEFAULT_HOST).strip().rstrip("/")
    if "://" in host:
        parts = urlsplit(host)
        if parts.scheme != "https" or not parts.hostname:
            raise ProtocolError(
                f"The Graph host {host!r} of profile {settings.profile_name!r} must be a host name or an "
                f"https URL: the access token is only ever sent over https.",
                "protocol",
            )
        return host if parts.path.rstrip("/") else f"{host}/v1.0"
    port = f":{settings.port}" if settings.port not in (None, 443) else ""
    return f"https://{host}{port}/v1.0"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class GraphClient:
    """Calls Graph for one profile's mailbox (``/users/{username}``) with its bearer token."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.base = base_url(settings)
        if not settings.access_token:
            raise ProtocolError(
                f"Profile {settings.profile_name!r} has no access token for Microsoft Graph; sign it in "
                f"with 'postroom oauth connect {settings.profile_name} --provider microsoft ...' (or let "
                f"a postroom_get_access_token plugin give it one).",
                "auth",
            )
        user = (settings.username or "").strip()
        if not user:
            raise ProtocolError(
                f"Profile {settings.profile_name!r} names no mailbox: its user name must be the mailbox's "
                f"address or user id.",
                "auth",
            )
        self.user = user
        self.user_url = f"{self.base}/users/{quote(user, safe='@')}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {settings.access_token}"
        self.session.headers["Prefer"] = IMMUTABLE_IDS
        # Per request, not on the session: requests lets $REQUESTS_CA_BUNDLE/$CURL_CA_BUNDLE override a
        # session's verify=False, but never a request's.
        self._verify: bool | None = None if settings.tls_verify else False

    def close(self) -> None:
        self.session.close()

    def where(self) -> str:
        return f"Microsoft Graph at {self.base}"

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str | None] | None = None,
        wait_when_throttled: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """One call; a short throttling wait is honoured in place for reads, any other failure raised."""
        if not url.startswith("https://"):
            url = f"{self.user_url}{url}"
        attempt = 0
        renewed = False
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    timeout=self.settings.timeout,
                    verify=self._verify,
                    **kwargs,
                )
            except requests.RequestException as error:
                raise self._network_failure(error) from error
            if response.status_code < 400:
                return response
            failure = self._failure(response)
            if response.status_code == 401 and not renewed and self._renew_token():
                renewed = True  # the token ran out during this connection: once more with the new one
                continue
            wait = failure.retry_after
            if (
                wait_when_throttled
                and response.status_code in THROTTLED
                and attempt < READ_RETRIES
                and (wait is None or wait <= READ_WAIT_LIMIT)
            ):
                attempt += 1
                time.sleep(wait if wait is not None else 2.0**attempt)
                continue
            raise failure

    def _renew_token(self) -> bool:
        """Whether the token provider now gives another token than the one in use (and it is in use now).

        A connection is opened with one token; a fetch cycle of thousands of mails can outlast it
        (a provider hands out a token until five minutes before its end). Graph checks every call,
        so the call that meets the expiry asks once for the current token instead of failing the cycle.
        """
        if self.settings.renew_token is None:
            return False
        try:
            token = self.settings.renew_token()
        except ProtocolError:
            raise  # the provider's own sentence (a revoked grant: sign in again) says more than the 401
        except Exception as error:  # a provider that cannot answer now: the 401 stands
            log.debug("renewing the Graph token of profile %s failed: %s", self.settings.profile_name, type(error).__name__)
            return False
        if not token or self.session.headers.get("Authorization") == f"Bearer {token}":
            return False
        self.session.headers["Authorization"] = f"Bearer {token}"
        return True

    def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, url, **kwargs)
        if not response.content:
            return {}
        try:
            document = response.json()
        except ValueError as error:
            raise ProtocolError(
                f"{self.where()} answered with something that is not JSON.", "protocol"
            ) from error
        if not isinstance(document, dict):
            raise ProtocolError(f"{self.where()} answered with an unexpected JSON document.", "protocol")
        return document

    def _failure(self, response: requests.Response) -> GraphError:
        code, message = f"HTTP{response.status_code}", response.reason or ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = str(body["error"].get("code") or code)
            message = str(body["error"].get("message") or message)
        status = response.status_code
        kind: FailureKind = "auth" if status in (401, 403) else "folder" if status == 404 else "protocol"
        return GraphError(status, code, message, kind, parse_retry_after(response.headers.get("Retry-After")))

    def _network_failure(self, error: requests.RequestException) -> ProtocolError:
        parts = urlsplit(self.base)
        server = replace(self.settings, host=parts.hostname, port=parts.port or 443)
        cause = network_cause(error)
        if cause is not None:
            return connection_failure(cause, "Microsoft Graph server", server)
        return ProtocolError(f"The connection to {self.where()} failed: {error}.", "connection")

    def describe(self, error: GraphError, doing: str) -> ProtocolError:
        """One sentence for a failed call, naming the server and what postroom was doing (never the token)."""
        if error.kind == "auth":
            return ProtocolError(
                f"{self.where()} refused the access token of profile {self.settings.profile_name!r} while "
                f"{doing} ({error.status} {error.code}); check that the token provider gives a current "
                f"token for Graph with the Mail.ReadWrite and Mail.Send permissions.",
                "auth",
            )
        if error.status in THROTTLED:
            wait = f", asking to wait {error.retry_after:.0f} s" if error.retry_after is not None else ""
            return ProtocolError(
                f"{self.where()} throttled profile {self.settings.profile_name!r} while {doing}{wait}.",
                "connection",
            )
        return ProtocolError(f"{self.where()} failed while {doing}: {error.status} {error}.", error.kind)
