"""What builtin protocol plugins share: the base classes (re-exported) and TLS/error helpers.

These helpers are the builtins' own. A vendor adding a protocol starts from ``docs/protocols.md``
(the class attributes, the mailbox and sender, the send contract, registering, testing) and
imports from the contract, ``postroom.core.contract.protocols``.
"""

from __future__ import annotations

import shlex
import socket
import ssl
import threading

from postroom.core.contract.protocols import (
    ConnectionSettings,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolError,
    ProtocolPlugin,
    Sender,
    SendFailure,
    SendReport,
)

__all__ = [
    "ConnectionSettings",
    "FetchedMail",
    "MailRef",
    "Mailbox",
    "ProtocolError",
    "ProtocolPlugin",
    "SendFailure",
    "SendReport",
    "Sender",
    "connection_failure",
    "plaintext_login_refused",
    "tls_context",
    "xoauth2_response",
]


def xoauth2_response(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (Gmail, Microsoft 365), before base64; the same for every protocol."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


_contexts: dict[bool, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(settings: ConnectionSettings) -> ssl.SSLContext:
    """A client TLS context that verifies the server's certificate unless the profile switched it off.

    One context per setting, shared: building one loads the system CA bundle (about 20 ms of CPU
    under the GIL), which a worker fetching hundreds of profiles cannot pay on every login. The
    plugins only pass it on, never change it; a changed CA bundle takes effect at the next start.
    """
    with _contexts_lock:
        context = _contexts.get(settings.tls_verify)
        if context is None:
            context = ssl.create_default_context()
            if not settings.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _contexts[settings.tls_verify] = context
        return context


def connection_failure(error: BaseException, what: str, settings: ConnectionSettings) -> ProtocolError:
    """Turn a socket/TLS exception into a one-sentence :class:`ProtocolError` naming the server.

    ``what`` names the server role ("IMAP server", "SMTP server").
    """
    where = f"{what} {settings.host}:{settings.port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return ProtocolError(
            f"The TLS certificate of {where} could not be verified ({error.verify_message}); "
            f"switch verification off for profile {settings.profile_name!r} with "
            f"'postroom profile modify {settings.profile_name} --no-tls-verify' if you trust this server.",
            "tls",
        )
    if isinstance(error, ssl.SSLError):
        return ProtocolError(f"The TLS handshake with {where} failed: {error.reason or error}.", "tls")
    if isinstance(error, socket.gaierror):
        return ProtocolError(
            f"The host name {settings.host!r} of the {what} does not resolve.", "unknown-host"
        )
    if isinstance(error, ConnectionRefusedError):
        return ProtocolError(f"The {where} refused the connection.", "connection")
    if isinstance(error, TimeoutError | socket.timeout):
        return ProtocolError(f"The {where} did not answer in time.", "connection")
    if isinstance(error, OSError):
        return ProtocolError(f"The connection to {where} failed: {error.strerror or error}.", "connection")
    return ProtocolError(f"The {where} failed: {error}.", "protocol")


def plaintext_login_refused(
    settings: ConnectionSettings, what: str, upgrade: str, secure_protocol: str
) -> str:
    """The one sentence for a server that offers no ``upgrade`` (STARTTLS, STLS) to a profile that logs in.

    Said before any credential is sent: the upgrade may be missing because a man in the middle
    stripped it, so only the profile's explicit switch may send the login in clear.
    """
    name = settings.profile_name
    return (
        f"The {what} {settings.host}:{settings.port} offers no {upgrade}, so profile {name!r} did not "
        f"send its login unencrypted; use {secure_protocol} or a server that offers {upgrade}, or allow "
        f"plain-text login with 'postroom profile modify {shlex.quote(name)} --allow-plaintext-login'."
    )
