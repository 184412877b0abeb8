"""The ``smtp`` and ``smtps`` send protocols (smtplib): STARTTLS when offered, AUTH for profiles with a user.

A profile whose outgoing login is ``none`` (a relay) reaches here with no user, password or token
and never sends AUTH, even where the server offers it; it still upgrades with STARTTLS when offered.

``smtp`` connects in the clear and upgrades with STARTTLS whenever the server offers it; a
profile that logs in refuses a server without STARTTLS unless it allows plain-text login;
``smtps`` speaks TLS from the first byte (port 465). Certificates are verified unless the
profile switched verification off. A profile with an access token (``postroom_get_access_token``)
logs in with ``AUTH XOAUTH2`` instead of its password, as IMAP and POP3 do.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import shlex
import smtplib
import socket
from collections.abc import Callable, Sequence

from postroom.core.contract.hooks import hookimpl
from postroom.plugins.protocols.base import (
    ConnectionSettings,
    ProtocolPlugin,
    Sender,
    SendFailure,
    SendReport,
    connection_failure,
    plaintext_login_refused,
    tls_context,
    xoauth2_response,
)

log = logging.getLogger(__name__)

SERVER_ROLE = "SMTP server"

# Any line ending that is not CRLF: servers hardened against SMTP smuggling refuse bare LF.
_NOT_CRLF = re.compile(rb"\r\n|\n|\r(?!\n)")


@functools.cache
def _local_hostname() -> str:
    """The EHLO name; looked up once, because ``getfqdn`` can wait on DNS for seconds."""
    return socket.getfqdn()


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return text.strip()


def _quoted_reply(code: int, reply: bytes | str) -> str:
    """A reply folded onto one line, to quote it inside a sentence of our own."""
    return " ".join(f"{code} {_reply_text(reply)}".split())


def _login_xoauth2(client: smtplib.SMTP, username: str, token: str) -> None:
    """``AUTH XOAUTH2`` (Gmail, Microsoft 365) with the token of ``postroom_get_access_token``.

    On a refused token the server sends a 334 with its error as JSON and waits for an empty
    line before its final 535; the empty answer below gives it that line.
    """
    client.ehlo_or_helo_if_needed()  # over implicit TLS nothing has said EHLO yet
    mechanisms = client.esmtp_features.get("auth", "").upper().split()
    if "XOAUTH2" not in mechanisms:
        raise smtplib.SMTPNotSupportedError("XOAUTH2")

    def respond(challenge: bytes | None = None) -> str:
        return "" if challenge is not None else xoauth2_response(username, token)

    client.auth("XOAUTH2", respond)


def _nothing() -> None:
    """``ready`` for a plain :meth:`SmtpSender.send`: nothing to wait for."""


def _close_quietly(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError):
            client.close()


class _ReadyAtData(smtplib.SMTP):
    """smtplib's client, calling ``ready`` when DATA is answered 354, before the message is sent.

    smtplib has no hook there; its only 354 reply is DATA's, so ``getreply`` is where to catch it.
    """

    ready: Callable[[], None] | None = None

    def getreply(self) -> tuple[int, bytes]:
        reply = super().getreply()
        if reply[0] == 354 and self.ready is not None:
            ready, self.ready = self.ready, None
            ready()
        return reply


class _ReadyAtDataTls(_ReadyAtData, smtplib.SMTP_SSL):
    """The same over implicit TLS (smtps)."""


class SmtpSender(Sender):
    """One connection to a profile's SMTP server, reused for every mail of a batch."""

    def __init__(self, settings: ConnectionSettings, *, implicit_tls: bool) -> None:
        self._settings = settings
        self._implicit_tls = implicit_tls
        self._where = f"{SERVER_ROLE} {self._settings.host}:{self._settings.port}"
        self._client: _ReadyAtData | None = None

    def connect(self) -> None:
        """Connect, secure and log in; raise :class:`SendFailure` saying which step failed."""
        self._client = self._open()

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        return self.send_when_ready(envelope_from, recipients, raw, _nothing)

    def send_when_ready(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, ready: Callable[[], None]
    ) -> SendReport:
        if not recipients:
            raise SendFailure("A mail without recipients cannot be sent.", kind="internal")
        raw = _NOT_CRLF.sub(b"\r\n", raw)
        try:
            return self._send_once(envelope_from, recipients, raw, ready)
        except smtplib.SMTPServerDisconnected:
            # The server dropped an idle connection (or said 421 and hung up): one fresh
            # connection is worth a try; a second drop is a real connection problem.
            log.info("The %s closed the connection; reconnecting once.", self._where)
            self._drop()
            self._client = self._open()
        try:
            return self._send_once(envelope_from, recipients, raw, ready)
        except smtplib.SMTPServerDisconnected as error:
            self._drop()
            raise SendFailure(
                f"The {self._where} closed the connection while a mail was being sent ({error}).",
                kind="connection",
            ) from error

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            _close_quietly(client)

    def _drop(self) -> None:
        client, self._client = self._client, None
        _close_quietly(client)

    def _send_once(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, ready: Callable[[], None]
    ) -> SendReport:
        if self._client is None:
            self._client = self._open()
        client = self._client
        client.ready = ready
        options = []
        if not all(address.isascii() for address in [envelope_from, *recipients]):
            options.append("SMTPUTF8")
        if not raw.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        try:
            refused = client.sendmail(envelope_from, list(recipients), raw, options)
        except smtplib.SMTPRecipientsRefused as error:
            closing = [reply for reply in error.recipients.values() if reply[0] == 421]
            if closing:
                # The server closed the channel (smtplib did too) before it heard every
                # recipient: the transaction failed, not one recipient.
                self._drop()
                raise self._reply_failure(*closing[0]) from error
            # Every recipient refused, each in its own words: a report like a partial refusal.
            # smtplib reset the transaction, so the connection still sends.
            refused = error.recipients
        except smtplib.SMTPNotSupportedError as error:
            raise SendFailure(
                f"The {self._where} does not support SMTPUTF8, which this mail's non-ASCII addresses need.",
                kind="protocol",
            ) from error
        except smtplib.SMTPResponseException as error:
            # SMTPSenderRefused, SMTPDataError and any other reply the transaction ended on.
            raise self._reply_failure(error.smtp_code, error.smtp_error) from error
        except smtplib.SMTPServerDisconnected:
            raise
        except smtplib.SMTPException as error:
            raise SendFailure(f"The {self._where} failed: {error}.", kind="protocol") from error
        except Exception:
            self._drop()  # ``ready`` raised after DATA: the server waits for a message that never comes
            raise
        finally:
            client.ready = None
        return SendReport(refused=self._refusals(refused))

    def _refusals(self, replies: dict[str, tuple[int, bytes]]) -> dict[str, SendFailure]:
        return {
            address: self._reply_failure(code, text, address) for address, (code, text) in replies.items()
        }

    def _reply_failure(self, code: int, reply: bytes | str, recipient: str | None = None) -> SendFailure:
        """A refusal as the server worded it: ``text`` is the reply's text, enhanced code included."""
        text = _reply_text(reply) or f"The {self._where} answered {code}."
        return SendFailure(text, reply_code=code, kind="protocol", recipient=recipient)

    def _open(self) -> _ReadyAtData:
        settings = self._settings
        if not settings.host:
            raise SendFailure(f"Profile {settings.profile_name!r} has no outgoing host.", kind="unknown-host")
        client: _ReadyAtData | None = None
        try:
            if self._implicit_tls:
                client = _ReadyAtDataTls(
                    settings.host,
                    settings.port or 0,
                    local_hostname=_local_hostname(),
                    timeout=settings.timeout,
                    context=tls_context(settings),
                )
            else:
                client = _ReadyAtData(
                    settings.host,
                    settings.port or 0,
                    local_hostname=_local_hostname(),
                    timeout=settings.timeout,
                )
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=tls_context(settings))
                    client.ehlo()
                elif (settings.username or settings.access_token) and not settings.allow_plaintext_login:
                    # Kind "tls", classified as a connection error like a failed handshake or an
                    # unverifiable certificate: the TLS step of connecting failed, and the server
                    # said nothing (no reply code) a security-policy category could rest on. The
                    # connection is dropped (kind != "protocol"), so a retry connects afresh and a
                    # man in the middle who went away no longer matters.
                    raise SendFailure(
                        plaintext_login_refused(settings, SERVER_ROLE, "STARTTLS", "smtps"), kind="tls"
                    )
                elif settings.username or settings.access_token:
                    log.warning(
                        "The %s offers no STARTTLS; logging in without TLS as profile %r allows.",
                        self._where,
                        settings.profile_name,
                    )
            if settings.access_token:
                _login_xoauth2(client, settings.username or "", settings.access_token)
            elif settings.username:
                client.login(settings.username, settings.password or "")
            return client
        except (smtplib.SMTPException, OSError, UnicodeEncodeError) as error:
            _close_quietly(client)
            raise self._open_failure(error) from error
        except BaseException:
            _close_quietly(client)
            raise

    def _open_failure(self, error: Exception) -> SendFailure:
        """The one-sentence :class:`SendFailure` of a failed connect, STARTTLS or login (no password)."""
        user = self._settings.username
        if isinstance(error, smtplib.SMTPAuthenticationError):
            return SendFailure(
                f"The {self._where} refused the login of user {user!r} "
                f"({_quoted_reply(error.smtp_code, error.smtp_error)}).",
                reply_code=error.smtp_code,
                kind="auth",
            )
        if isinstance(error, smtplib.SMTPNotSupportedError):
            if self._settings.access_token:
                return SendFailure(
                    f"The {self._where} does not offer AUTH XOAUTH2 (needed for the profile's access "
                    f"token), so user {user!r} cannot log in.",
                    kind="auth",
                )
            # A relay that takes mail without any login offers no AUTH: say how to send to it.
            name = self._settings.profile_name
            return SendFailure(
                f"The {self._where} does not offer AUTH, so user {user!r} cannot log in; if it is a relay "
                f"that takes mail without a login, set 'postroom profile modify {shlex.quote(name)} "
                "--outgoing-login none'.",
                kind="auth",
            )
        if isinstance(error, UnicodeEncodeError):
            return SendFailure(
                f"The login of user {user!r} to the {self._where} failed: SMTP AUTH needs an ASCII password.",
                kind="auth",
            )
        if isinstance(error, smtplib.SMTPServerDisconnected):
            return SendFailure(
                f"The {self._where} closed the connection before the login.", kind="connection"
            )
        if isinstance(error, smtplib.SMTPResponseException):
            # A refused greeting, EHLO or STARTTLS: keep the reply so its enhanced code is classified.
            reply = _quoted_reply(error.smtp_code, error.smtp_error)
            return SendFailure(
                f"The {self._where} refused the connection ({reply}).",
                reply_code=error.smtp_code,
                kind="connection",
            )
        if isinstance(error, smtplib.SMTPException):
            return SendFailure(f"The {self._where} failed: {error}.", kind="protocol")
        failure = connection_failure(error, SERVER_ROLE, self._settings)
        return SendFailure(str(failure), kind=failure.kind)


class SmtpProtocol(ProtocolPlugin):
    """Plain SMTP on port 25, upgraded with STARTTLS whenever the server offers it."""

    NAME = "smtp"
    LABEL = "SMTP (STARTTLS when offered)"
    DEFAULT_PORT = 25
    CAN_SEND = True

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        sender = SmtpSender(settings, implicit_tls=False)
        sender.connect()
        return sender


class SmtpsProtocol(ProtocolPlugin):
    """SMTP over implicit TLS (RFC 8314), port 465."""

    NAME = "smtps"
    LABEL = "SMTP over TLS"
    DEFAULT_PORT = 465
    CAN_SEND = True

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        sender = SmtpSender(settings, implicit_tls=True)
        sender.connect()
        return sender


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [SmtpProtocol, SmtpsProtocol]
