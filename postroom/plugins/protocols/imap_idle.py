"""IMAP IDLE (RFC 2177) for the worker's watcher: one logged-in connection per watched folder.

The connection is opened exactly as a fetch opens one (``imap.connect``: TLS or STARTTLS, a
password only inside TLS unless the profile allows otherwise, XOAUTH2 with a token), the folder
selected read-only, and ``IDLE`` started. imapclient already speaks IDLE and hands out its socket
for a selector (``IMAPClient.socket``), so the exchange is not written again here: the worker's
one selector thread calls :meth:`ImapWaiter.read_news` only when the socket is readable, and
``idle_check(0)`` then reads without waiting.
"""

from __future__ import annotations

import imaplib
import logging

from imapclient import IMAPClient

from postroom.core.contract.protocols import MailWaiter
from postroom.plugins.protocols.base import ConnectionSettings, ProtocolError
from postroom.plugins.protocols.imap import WHAT, close_quietly, connect, talking_to

log = logging.getLogger(__name__)

#: Readable yet nothing to read this many times in a row: the server closed the connection
#: (imapclient's ``idle_check`` swallows EOF). One or two empty reads are normal with TLS
#: (a record split across packets, a TLS 1.3 session ticket).
EMPTY_READS_MEAN_CLOSED = 5


def open_waiter(settings: ConnectionSettings, implicit_tls: bool, folder: str) -> ImapWaiter | None:
    """A waiter on ``folder``, or None when the server does not advertise IDLE."""
    client = connect(settings, implicit_tls)
    try:
        with talking_to(settings):
            if not client.has_capability("IDLE"):
                close_quietly(client)
                return None
            client.select_folder(folder, readonly=True)
            waiter = ImapWaiter(client, settings)
            waiter.start()
        return waiter
    except BaseException:
        close_quietly(client)
        raise


def _is_news(response: object) -> bool:
    """``* n EXISTS`` (new mail); ``* BYE`` raises: the server is ending the connection."""
    if isinstance(response, tuple) and len(response) >= 2:
        if response[1] == b"EXISTS":
            return True
        if response[0] == b"BYE":
            raise imaplib.IMAP4.abort(f"the server said BYE {response[1]!r}")
    return False


class ImapWaiter(MailWaiter):
    """One IMAP connection in IDLE on one folder."""

    def __init__(self, client: IMAPClient, settings: ConnectionSettings) -> None:
        self.client = client
        self.settings = settings
        self._empty_reads = 0

    def start(self) -> bool:
        """Send ``IDLE``; True if the server announced new mail before it answered ``+``.

        Not imapclient's ``idle()``: that one fails on an untagged response before the ``+``, which
        Dovecot sends when mail arrived while a renewal's DONE was under way. Sets the tag
        imapclient's ``idle_done`` and ``idle_check`` work from.
        """
        imap = self.client._imap
        with talking_to(self.settings):
            tag = imap._command("IDLE")
            self.client._idle_tag = tag
            while imap._get_response() is not None:  # None: the continuation "+ idling"
                if imap.tagged_commands.get(tag) is not None:
                    raise ProtocolError(
                        f"The {WHAT} {self.settings.host}:{self.settings.port} refused IDLE: "
                        f"{imap.tagged_commands[tag]}.",
                        "protocol",
                    )
            return bool(imap.untagged_responses.pop("EXISTS", None))

    def fileno(self) -> int:
        return int(self.client.socket().fileno())

    def read_news(self) -> bool:
        with talking_to(self.settings):
            responses = self.client.idle_check(timeout=0)
            if not responses:
                self._empty_reads += 1
                if self._empty_reads >= EMPTY_READS_MEAN_CLOSED:
                    raise ProtocolError(
                        f"The {WHAT} {self.settings.host}:{self.settings.port} closed the IDLE connection.",
                        "connection",
                    )
                return False
            self._empty_reads = 0
            return any([_is_news(response) for response in responses])

    def renew(self) -> bool:
        with talking_to(self.settings):
            _text, responses = self.client.idle_done()
            news = any([_is_news(response) for response in responses])
        return self.start() or news

    def close(self) -> None:
        try:
            self.client.idle_done()
        except Exception:
            log.debug("Ending IDLE failed", exc_info=True)
        close_quietly(self.client)
