"""The builtin POP3 protocols: ``pop3`` (110, STLS before the login) and ``pop3s`` (995, implicit TLS)."""

from __future__ import annotations

import base64
import logging
import poplib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from typing import ClassVar

from postroom.core.contract.hooks import hookimpl
from postroom.plugins.protocols.base import (
    ConnectionSettings,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolError,
    ProtocolPlugin,
    connection_failure,
    plaintext_login_refused,
    tls_context,
    xoauth2_response,
)

log = logging.getLogger(__name__)

WHAT = "POP3 server"
#: poplib refuses lines over 2048 bytes, but real mail breaks RFC 5322's 998 limit now and then.
MAX_LINE = 1024 * 1024


class _POP3(poplib.POP3):
    """POP3 that reads lines of up to :data:`MAX_LINE` bytes (overrides poplib's private reader)."""

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise poplib.error_proto("line too long")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        if line.endswith(b"\r\n"):
            return line[:-2], len(line)
        return line.rstrip(b"\r\n"), len(line)


class _POP3_SSL(_POP3, poplib.POP3_SSL):
    """POP3 over TLS with the same long-line reader."""


def reply_text(error: BaseException) -> str:
    """The server's reply from a poplib error, decoded and without the trailing full stop."""
    reply = error.args[0] if error.args else error
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    text = str(reply).strip()
    return text.removeprefix("-ERR").strip().rstrip(".")


@contextmanager
def talking_to(settings: ConnectionSettings) -> Iterator[None]:
    """Turn a broken connection or an unexpected ``-ERR`` into a :class:`ProtocolError`."""
    try:
        yield
    except ProtocolError:
        raise
    except poplib.error_proto as error:
        raise ProtocolError(
            f"The {WHAT} {settings.host}:{settings.port} refused a command: {reply_text(error)}.", "protocol"
        ) from error
    except OSError as error:
        raise connection_failure(error, WHAT, settings) from error


def connect(settings: ConnectionSettings, implicit_tls: bool) -> poplib.POP3:
    """Connect (with TLS, or STLS; in clear only if the profile allows it) and log in."""
    if not settings.host:
        raise ProtocolError(f"Profile {settings.profile_name!r} has no incoming host for POP3.", "connection")
    # The core fills in DEFAULT_PORT when the profile gives none; only a caller of its own can omit it.
    if not settings.port:
        raise ProtocolError(f"Profile {settings.profile_name!r} has no incoming port for POP3.", "connection")
    context = tls_context(settings)
    try:
        if implicit_tls:
            conn: poplib.POP3 = _POP3_SSL(
                settings.host, settings.port, context=context, timeout=settings.timeout
            )
        else:
            conn = _POP3(settings.host, settings.port, timeout=settings.timeout)
    except OSError as error:
        raise connection_failure(error, WHAT, settings) from error
    except poplib.error_proto as error:
        raise ProtocolError(
            f"The server at {settings.host}:{settings.port} did not greet like a POP3 server; "
            f"check the incoming port and protocol of profile {settings.profile_name!r}.",
            "protocol",
        ) from error
    try:
        if not implicit_tls:
            with talking_to(settings):
                try:
                    capabilities = conn.capa()
                except poplib.error_proto:  # a server without CAPA offers no STLS either
                    capabilities = {}
                if "STLS" in capabilities:
                    conn.stls(context)
                elif not settings.allow_plaintext_login:
                    raise ProtocolError(plaintext_login_refused(settings, WHAT, "STLS", "pop3s"), "tls")
                else:
                    log.warning(
                        "The %s %s:%s offers no STLS; logging in unencrypted as profile %r allows.",
                        WHAT,
                        settings.host,
                        settings.port,
                        settings.profile_name,
                    )
        login(conn, settings)
    except BaseException:
        close_quietly(conn, quit=False)
        raise
    return conn


def login(conn: poplib.POP3, settings: ConnectionSettings) -> None:
    """USER/PASS, or ``AUTH XOAUTH2`` when the profile has an access token."""
    username = settings.username or ""
    with talking_to(settings):
        try:
            if settings.access_token:
                xoauth2(conn, username, settings.access_token)
            else:
                conn.user(username)
                conn.pass_(settings.password or "")
        except poplib.error_proto as error:
            # The server's reply never echoes the password, so it is safe to show.
            raise ProtocolError(
                f"The {WHAT} {settings.host}:{settings.port} refused the login {username!r}: "
                f"{reply_text(error)}.",
                "auth",
            ) from error


def xoauth2(conn: poplib.POP3, username: str, token: str) -> None:
    """SASL XOAUTH2 in two steps, since a token rarely fits RFC 5034's 255-byte command line.

    poplib has no AUTH command, hence its private ``_shortcmd``.
    """
    blob = base64.b64encode(xoauth2_response(username, token).encode()).decode("ascii")
    conn._shortcmd("AUTH XOAUTH2")  # type: ignore[attr-defined]
    reply = conn._shortcmd(blob)  # type: ignore[attr-defined]
    if not reply.startswith(b"+OK"):
        # A refused token comes back as a challenge holding the error; answering it empty ends
        # the exchange with the -ERR that poplib raises.
        conn._shortcmd("")  # type: ignore[attr-defined]


def close_quietly(conn: poplib.POP3, quit: bool = True) -> None:
    """QUIT (which commits deletions), or just drop the connection when that fails or is not wanted."""
    if quit:
        try:
            conn.quit()
            return
        except Exception:
            log.warning("QUIT failed, so the POP3 server deleted nothing in this session", exc_info=True)
    try:
        conn.close()
    except Exception:
        log.debug("Closing a POP3 connection failed", exc_info=True)


class Pop3Mailbox(Mailbox):
    """A logged-in POP3 session: the inbox, keyed by UIDL.

    POP3 deletes at ``QUIT``: :meth:`delete` only marks mails with ``DELE``, and :meth:`close`
    commits them. A session that breaks before ``QUIT`` deletes nothing, which is safe because
    the fetch ledger already holds those mails.
    """

    def __init__(self, conn: poplib.POP3, settings: ConnectionSettings) -> None:
        self.conn = conn
        self.settings = settings
        self._numbers: dict[str, int] | None = None

    def _message_numbers(self) -> dict[str, int]:
        """UIDL → message number for this session (message numbers are stable until QUIT)."""
        if self._numbers is None:
            with talking_to(self.settings):
                _, lines, _ = self.conn.uidl()
            self._numbers = {}
            for line in lines:
                number, uidl = line.decode("ascii", "replace").split(None, 1)
                self._numbers[uidl.strip()] = int(number)
        return self._numbers

    def list_mail(self, since: date | None) -> list[MailRef]:
        """Every mail by UIDL in server order; with ``since``, by the mail's own Date header.

        POP3 knows no arrival time, so each mail's headers are read with ``TOP n 0``; a mail
        whose Date is missing or unreadable is kept rather than risk never fetching it.
        """
        numbers = self._message_numbers()
        with talking_to(self.settings):
            _, size_lines, _ = self.conn.list()
            sizes = {int(n): int(s) for n, s in (line.split()[:2] for line in size_lines)}
            refs = []
            for uidl, number in sorted(numbers.items(), key=lambda item: item[1]):
                if since is None or self._sent_on_or_after(number, since):
                    refs.append(MailRef(uidl, sizes.get(number)))
        return refs

    def _sent_on_or_after(self, number: int, since: date) -> bool:
        _, lines, _ = self.conn.top(number, 0)
        header = BytesHeaderParser().parsebytes(b"\r\n".join(lines) + b"\r\n")["Date"]
        if header is None:
            return True
        try:
            sent = parsedate_to_datetime(str(header))
        except (TypeError, ValueError, IndexError, OverflowError):
            return True
        # The day as the sender wrote it, without moving it to another time zone.
        return sent.date() >= since

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        """``RETR`` each mail; POP3 has no batch download."""
        numbers = self._message_numbers()
        for key in keys:
            number = numbers.get(key)
            if number is None:
                continue
            with talking_to(self.settings):
                try:
                    _, lines, _ = self.conn.retr(number)
                except poplib.error_proto as error:
                    # The server's -ERR (bytes) means deleted by another session meanwhile; poplib's
                    # own complaints (str: EOF, an overlong line) mean the session is broken.
                    if isinstance(error.args[0], bytes) and error.args[0].startswith(b"-ERR"):
                        continue
                    raise
            yield FetchedMail(key, b"\r\n".join(lines) + b"\r\n")

    def delete(self, keys: Sequence[str]) -> None:
        """Mark these mails with ``DELE``; the server removes them at ``QUIT`` in :meth:`close`."""
        numbers = self._message_numbers()
        with talking_to(self.settings):
            for key in keys:
                if key in numbers:
                    self.conn.dele(numbers[key])

    def check(self) -> None:
        with talking_to(self.settings):
            self.conn.stat()

    def close(self) -> None:
        close_quietly(self.conn)


class Pop3Protocol(ProtocolPlugin):
    """POP3 on port 110, upgraded with STLS before the login (in clear only if allowed). Reaches the inbox only."""

    NAME = "pop3"
    LABEL = "POP3 (STLS)"
    DEFAULT_PORT: ClassVar[int | None] = 110
    CAN_FETCH = True
    IMPLICIT_TLS: ClassVar[bool] = False
    WAITS_IN_STANDBY = True

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        if settings.folder and settings.folder.upper() != "INBOX":
            raise ProtocolError(
                f"POP3 reaches only the inbox, so folder {settings.folder!r} cannot be fetched from the "
                f"{WHAT} {settings.host}:{settings.port} (profile {settings.profile_name!r}); "
                "use INBOX or an IMAP protocol.",
                "folder",
            )
        return Pop3Mailbox(connect(settings, self.IMPLICIT_TLS), settings)


class Pop3sProtocol(Pop3Protocol):
    """POP3 inside TLS from the first byte, on port 995."""

    NAME = "pop3s"
    LABEL = "POP3 over TLS"
    DEFAULT_PORT: ClassVar[int | None] = 995
    IMPLICIT_TLS: ClassVar[bool] = True


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [Pop3Protocol, Pop3sProtocol]
