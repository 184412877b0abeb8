"""What a token provider is: the flows it offers, how it signs in (``oauth connect``) and how it refreshes.

The providers are plain objects behind their plugin modules; :mod:`.store` calls ``refresh`` under
the grant's row lock and the CLI calls ``connect``. Neither keeps state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import ProtocolError, SendFailure

if TYPE_CHECKING:
    import requests

#: How the CLI shows a line to the operator during a sign-in (the verification address, the code).
Say = Callable[[str], None]


class TokenUnavailable(ProtocolError, SendFailure):
    """No access token could be had: a fetch puts the profile in error, a send records a failure.

    Both a :class:`ProtocolError` (the fetch cycle's error) and a :class:`SendFailure` (the
    outbox's), since the hook is called when either side connects. The message is one sentence
    and never holds a secret.
    """

    def __init__(self, message: str, kind: Any = "auth") -> None:
        ProtocolError.__init__(self, message, kind)
        self.text = message
        self.reply_code = None
        self.recipient = None


class GrantRevoked(Exception):
    """The authorisation server answered ``invalid_grant`` (or refused the client): sign in again."""


class ProviderUnreachable(Exception):
    """The authorisation server could not be reached or answered something unusable; try again later."""


@dataclass
class Grant:
    """A grant with its secrets in the clear, for the provider's use only (``repr`` hides them)."""

    profile_name: str
    provider: str
    flow: str
    scopes: list[str]
    tenant: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    account: str | None = None
    authority: str | None = None
    ca_file: str | None = None


@dataclass
class Issued:
    """What a sign-in or refresh returned: the token, its lifetime, a rotated refresh token, who."""

    access_token: str = field(repr=False)
    expires_in: float
    refresh_token: str | None = field(default=None, repr=False)
    account: str | None = None


class TokenProvider:
    """One identity provider's flows. Subclasses set NAME, FLOWS and the default scopes."""

    NAME: ClassVar[str]
    TITLE: ClassVar[str]
    FLOWS: ClassVar[tuple[str, ...]]
    #: Flows whose refresh needs a stored refresh token (a signed-in user).
    DELEGATED: ClassVar[tuple[str, ...]]

    def default_scopes(self, flow: str, protocols: frozenset[str] = frozenset()) -> list[str]:
        """The scopes a sign-in asks for unless told: what the profile's ``protocols`` need."""
        raise NotImplementedError

    def connect(self, grant: Grant, say: Say, open_browser: bool = False, loopback_port: int = 0) -> Issued:
        """Sign in by ``grant.flow`` (interactive flows talk to the operator through ``say``; a browser
        sign-in comes back to ``loopback_port`` on 127.0.0.1, any free one when 0)."""
        raise NotImplementedError

    def refresh(self, grant: Grant) -> Issued:
        """A new access token for a stored grant; raises :class:`GrantRevoked` or :class:`ProviderUnreachable`."""
        raise NotImplementedError

    def new_grant(self, **fields: Any) -> Grant:
        """A grant of this provider, for :meth:`connect` (the CLI builds it without importing this module)."""
        return Grant(provider=self.NAME, **fields)

    def check_flow(self, flow: str) -> None:
        if flow not in self.FLOWS:
            raise UserError(
                f"Provider {self.NAME!r} offers the flows {', '.join(self.FLOWS)}, not {flow!r}."
            )


def http_session(ca_file: str | None) -> requests.Session:
    """A requests session that verifies the authorisation server with ``ca_file`` when one is given.

    With a CA file the environment is not consulted: ``requests`` would otherwise let
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override the session's ``verify``.
    """
    import requests

    session = requests.Session()
    if ca_file:
        session.verify = ca_file
        session.trust_env = False
    return session
