"""How the ``ews`` protocol reaches an EWS server with exchangelib, and how it words the failures.

exchangelib keeps state per process (cached protocols, one HTTP adapter class, its loggers); this
module is where postroom adapts that state to per-profile settings.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    UTC,
    Account,
    Configuration,
    Credentials,
    FailFast,
    OAuth2AuthorizationCodeCredentials,
)
from exchangelib.credentials import BaseCredentials
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorFolderNotFound,
    ErrorNonExistentMailbox,
    EWSError,
    RedirectError,
    UnauthorizedError,
)
from exchangelib.protocol import BaseProtocol

from postroom.plugins.protocols.base import ConnectionSettings, ProtocolError, connection_failure
from postroom.plugins.protocols.http_errors import network_cause

log = logging.getLogger(__name__)

#: POSTROOM_EWS_AUTH forces the login method (``ntlm`` or ``basic``) for every EWS profile of the
#: process. Unset (or ``auto``), exchangelib asks the server, which names its methods in the
#: WWW-Authenticate header of an unauthenticated request, and picks the strongest offered
#: (NTLM before Basic): a default on-premises Exchange gets NTLM, a server that only allows
#: Basic gets Basic, and nobody has to know which in advance.
AUTH_ENV = "POSTROOM_EWS_AUTH"
_AUTH_TYPES = {"ntlm": NTLM, "basic": BASIC}

# --- TLS verification per server ----------------------------------------------------------------
# exchangelib builds every HTTP session with the process-wide BaseProtocol.HTTP_ADAPTER_CLS, so
# "no verification" cannot be given to one connection. This adapter consults, per request, the
# set of EWS servers (scheme://host:port) for which some profile switched verification off; so
# a profile that switches it off also switches it off for every other profile on the same server.

_unverified: dict[str, set[int]] = {}
_unverified_lock = threading.Lock()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _verifies(url: str) -> bool:
    with _unverified_lock:
        return not _unverified.get(_origin(url))


class _PerServerTlsAdapter(requests.adapters.HTTPAdapter):
    """Verifies certificates except for the EWS servers listed in ``_unverified``."""

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify if _verifies(url) else False, cert)

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        verify = verify if _verifies(request.url) else False
        return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)


def _apply_tls_choice(endpoint: str, settings: ConnectionSettings) -> None:
    if BaseProtocol.HTTP_ADAPTER_CLS is requests.adapters.HTTPAdapter:
        BaseProtocol.HTTP_ADAPTER_CLS = _PerServerTlsAdapter
    elif BaseProtocol.HTTP_ADAPTER_CLS is not _PerServerTlsAdapter and not settings.tls_verify:
        log.warning("exchangelib uses a custom HTTP adapter; it decides TLS verification for %s.", endpoint)
    with _unverified_lock:
        profiles = _unverified.setdefault(_origin(endpoint), set())
        if settings.tls_verify:
            profiles.discard(settings.profile_id)
        else:
            profiles.add(settings.profile_id)


class _RedactAuthorization(logging.Filter):
    """exchangelib logs request headers at DEBUG, Authorization included; postroom never logs secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict) and isinstance(args.get("request_headers"), Mapping):
            headers = dict(args["request_headers"])
            for name in list(headers):
                if name.lower() in ("authorization", "cookie"):
                    headers[name] = "********"
            record.args = {**args, "request_headers": headers}
        return True


logging.getLogger("exchangelib.util").addFilter(_RedactAuthorization())


# --- connecting -----------------------------------------------------------------------------------


def endpoint_url(settings: ConnectionSettings) -> str:
    """The EWS URL: the host field as given when it is a URL, else ``https://HOST[:PORT]/EWS/Exchange.asmx``."""
    host = (settings.host or "").strip()
    if not host:
        raise ProtocolError(f"Profile {settings.profile_name!r} has no EWS host.", "protocol")
    if "://" in host:
        parts = urlsplit(host)
        try:
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is no number
            valid = False
        if not valid:
            raise ProtocolError(
                f"The EWS host {host!r} of profile {settings.profile_name!r} is neither a host name nor "
                f"an http(s) URL such as https://mail.example.com/EWS/Exchange.asmx.",
                "protocol",
            )
        return host
    port = f":{settings.port}" if settings.port not in (None, 443) else ""
    return f"https://{host}{port}/EWS/Exchange.asmx"


def _auth_type() -> str | None:
    choice = os.environ.get(AUTH_ENV, "auto").strip().lower()
    if choice in ("", "auto"):
        return None
    if choice not in _AUTH_TYPES:
        raise ProtocolError(f"{AUTH_ENV}={choice!r} is not one of auto, ntlm, basic.", "protocol")
    return _AUTH_TYPES[choice]


def _login(settings: ConnectionSettings) -> tuple[BaseCredentials, str | None, str]:
    """The credentials, forced login method and access type of a profile.

    With an access token (``postroom_get_access_token``, e.g. from Microsoft Entra ID, which
    Exchange Online requires since it turned Basic off) the login is OAuth2 with that bearer
    token. An app-only token (client credentials: ``roles`` and no ``scp`` claim) acts on the
    mailbox by impersonation, as Exchange Online wants from daemons; a user's token as the user.
    """
    if settings.access_token:
        token = {"access_token": settings.access_token, "token_type": "Bearer"}
        credentials = OAuth2AuthorizationCodeCredentials(access_token=token)
        return credentials, OAUTH2, IMPERSONATION if app_only_token(settings.access_token) else DELEGATE
    return Credentials(settings.username or "", settings.password or ""), _auth_type(), DELEGATE


def app_only_token(token: str) -> bool:
    """Whether a JWT access token was issued to an application rather than a user.

    Only its claims are read, not checked: Exchange checks the signature; this only decides
    how to address the mailbox. A token that is no JWT counts as a user's.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(claims, dict) and "roles" in claims and "scp" not in claims


def connect(settings: ConnectionSettings, endpoint: str, address: str) -> Account:
    """An exchangelib Account for ``address``; it sends nothing until the first real call.

    exchangelib caches one Protocol per endpoint and credentials for the whole process, and with
    it the login method and the server version it found out, so both are asked once per process.
    """
    if settings.access_token and not endpoint.lower().startswith("https:"):
        raise ProtocolError(
            f"Profile {settings.profile_name!r} logs in with an access token, which is only ever sent "
            f"over https, but its EWS URL is {endpoint}.",
            "auth",
        )
    _apply_tls_choice(endpoint, settings)
    credentials, auth_type, access_type = _login(settings)
    config = Configuration(
        service_endpoint=endpoint,
        credentials=credentials,
        auth_type=auth_type,
        # postroom retries on its own schedule; exchangelib's default back-off could sleep for an hour.
        retry_policy=FailFast(),
    )
    account = Account(
        primary_smtp_address=address,
        config=config,
        autodiscover=False,
        access_type=access_type,
        default_timezone=UTC,
    )
    protocol = account.protocol
    protocol.TIMEOUT = settings.timeout
    forced = config.auth_type
    if forced is not None and protocol.config.auth_type != forced:
        # The cached Protocol may have negotiated another method before the operator forced one.
        protocol.config.auth_type = forced
        protocol.close()
    if settings.access_token:
        _forget_older_token(endpoint, settings.profile_id, protocol)
    return account


#: The Protocol each token-using profile last connected with, by endpoint.
_token_protocols: dict[tuple[str, int], BaseProtocol] = {}
_token_protocols_lock = threading.Lock()


def _forget_older_token(endpoint: str, profile_id: int, protocol: BaseProtocol) -> None:
    """Drop the Protocol of the profile's previous connection from exchangelib's cache.

    exchangelib caches a Protocol, with its pool of HTTP sessions, per endpoint and credentials.
    Token credentials never match an earlier connect's (each holds its own OAuth client, and a
    refreshed token differs anyway), so without this a worker would keep one Protocol per fetch
    cycle. The older one is only evicted, not closed: a connection made with it may still be in
    use on another thread; it goes once nothing refers to it.
    """
    with _token_protocols_lock:
        previous = _token_protocols.get((endpoint, profile_id))
        _token_protocols[(endpoint, profile_id)] = protocol
    if previous is None or previous is protocol:
        return
    # By identity, and by rebuilding the dict: the credentials' hash changes once exchangelib
    # caches its OAuth client on them, so neither ``del Protocol[config]`` nor ``del cache[key]``
    # finds the entry any more.
    cache_owner = type(protocol)
    with cache_owner._protocol_cache_lock:
        cache = cache_owner._protocol_cache
        kept = [(key, entry) for key, entry in cache.items() if entry[0] is not previous]
        cache.clear()
        cache.update(kept)


def describe_failure(
    error: BaseException, settings: ConnectionSettings, endpoint: str, address: str
) -> ProtocolError:
    """One sentence naming the server for an exchangelib failure (never with the password)."""
    cause = network_cause(error)
    if cause is not None:
        parts = urlsplit(endpoint)
        port = parts.port or (80 if parts.scheme == "http" else 443)
        server = replace(settings, host=parts.hostname, port=port)
        return connection_failure(cause, "EWS server", server)
    where = f"EWS server {endpoint}"
    if isinstance(error, UnauthorizedError):
        check = (
            "the access token is current and meant for EWS"
            if settings.access_token
            else "the user name and password are right"
        )
        return ProtocolError(
            f"The {where} refused the login of {settings.username!r}; check that {check}.",
            "auth",
        )
    if isinstance(error, ErrorFolderNotFound):
        return ProtocolError(f"A folder of the mailbox {address!r} vanished on the {where}.", "folder")
    if isinstance(error, ErrorNonExistentMailbox):
        return ProtocolError(f"The {where} has no mailbox {address!r}.", "folder")
    if isinstance(error, ErrorAccessDenied):
        return ProtocolError(
            f"The {where} denied {settings.username!r} access to the mailbox {address!r}.", "auth"
        )
    if isinstance(error, RedirectError):
        return ProtocolError(f"The {where} redirects to {error.url}; use that URL as the host.", "protocol")
    if isinstance(error, EWSError) and str(error).startswith("Failed to get auth type"):
        return ProtocolError(
            f"The {where} offers no login method postroom knows; is that the EWS URL?", "protocol"
        )
    return ProtocolError(f"The {where} failed: {type(error).__name__}: {error}", "protocol")
