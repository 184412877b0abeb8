"""The protocol plugin contract: how postroom opens a mailbox to fetch and a sender to send.

A vendor adding a mail protocol subclasses :class:`ProtocolPlugin` and returns the class from
the ``postroom_register_protocols`` hook. The core only ever talks to the abstract classes here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import TracebackType
from typing import ClassVar, Literal, NamedTuple, Self

#: The protocol name of a profile's direction that is not used (``--fetch-protocol none``).
NO_PROTOCOL = "none"

#: Why a connection-level operation failed. The core uses it to word the profile's error and
#: to classify a failed send (``unknown-host`` and ``connection`` are categories of their own).
FailureKind = Literal["auth", "tls", "connection", "unknown-host", "folder", "protocol", "internal"]


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a protocol plugin needs to connect for one profile in one direction.

    ``folder`` is the incoming folder for a mailbox, the outgoing folder for a sender (or the
    folder a copy is appended to). ``password`` and ``access_token`` are decrypted secrets:
    plugins must never log or print them, hence ``repr=False``.

    ``allow_plaintext_login`` is the operator's explicit consent to send the login over an
    unencrypted connection. Without it a plugin sends a password or token only inside TLS
    (implicit, or STARTTLS/STLS): a server that offers no upgrade, or a man in the middle who
    strips it, fails the connection before any credential leaves (``ProtocolError`` or
    ``SendFailure`` of kind ``tls``). ``tls_verify=False`` does not lift this: unverified TLS
    still hides the password from a passive listener.
    """

    profile_id: int
    profile_name: str
    host: str | None
    port: int | None
    username: str | None
    password: str | None = field(default=None, repr=False)
    folder: str | None = None
    tls_verify: bool = True
    timeout: float = 30.0
    access_token: str | None = field(default=None, repr=False)
    allow_plaintext_login: bool = False
    #: What the profile's mailbox returned from :meth:`Mailbox.sync_state` after its last complete
    #: fetch cycle (e.g. a Microsoft Graph delta link); None before the first, or for protocols
    #: that keep none. Opaque to the core.
    sync_state: str | None = None
    #: Asks the token provider again for the profile's access token (None without a token): for a
    #: connection that outlives its token, e.g. a long Microsoft Graph fetch cycle that meets a 401.
    #: A provider hands out its cached token while valid, a new one once that is due.
    renew_token: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)


class MailRef(NamedTuple):
    """One mail as listed on the server, before it is downloaded.

    ``key`` is the mail's stable identity in this mailbox and becomes the fetch-ledger key,
    so it must not change between sessions (IMAP: ``folder/UIDVALIDITY/UID``; POP3: the UIDL;
    EWS: the item id; Maildir: the file's key). A named tuple rather than a frozen dataclass:
    a kept mailbox lists every mail every cycle, and this is four times faster to make.
    """

    key: str
    size: int | None = None


@dataclass(frozen=True)
class FetchedMail:
    """A downloaded mail: its ledger key and its raw RFC 5322 bytes, untouched."""

    key: str
    raw: bytes


class ProtocolError(Exception):
    """A server or connection failure that puts the profile in error (not a bad mail).

    The message is one sentence an operator understands and names the server; it never
    contains a password.
    """

    def __init__(self, message: str, kind: FailureKind = "protocol") -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


class SendFailure(Exception):
    """What the server said to a failed send: raised when the whole transaction failed, else one refusal.

    :meth:`Sender.send` raises it only for a failure of the whole transaction; a recipient's
    refusal travels in :attr:`SendReport.refused` instead, with ``recipient`` set.
    ``reply_code`` and ``text`` are the SMTP (or equivalent) reply, ``text`` including an
    enhanced status code if the server gave one; ``kind`` says whether this was a reply from
    the server (``protocol``) or a failure to reach it (``connection``, ``unknown-host``,
    ``tls``, ``auth``).
    """

    def __init__(
        self,
        text: str,
        *,
        reply_code: int | None = None,
        kind: FailureKind = "protocol",
        recipient: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(text)
        self.text = text
        self.reply_code = reply_code
        self.kind: FailureKind = kind
        self.recipient = recipient
        #: Seconds the server asked the client to wait before trying again (HTTP ``Retry-After``
        #: of a throttled API), or None. The outbox never schedules the retry sooner, whatever
        #: the category's policy says.
        self.retry_after = retry_after


@dataclass
class SendReport:
    """The outcome of one send transaction: each refused recipient with the server's refusal.

    The recipients not in ``refused`` accepted the mail. Every recipient refused is a report
    too, not an exception: the outbox retries or fails each refused recipient by the category
    of its own refusal, whether some others accepted the mail or none did.
    """

    refused: dict[str, SendFailure] = field(default_factory=dict)


class _Closing(abc.ABC):
    """Context-manager plumbing shared by mailboxes and senders."""

    @abc.abstractmethod
    def close(self) -> None:
        """Log out and close the connection; must not raise on an already broken connection."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Mailbox(_Closing):
    """An open, logged-in session on one folder of a profile's incoming server."""

    @abc.abstractmethod
    def list_mail(self, since: date | None) -> list[MailRef]:
        """Every mail in the folder, oldest first; with ``since``, only mail received on or after that day."""

    @abc.abstractmethod
    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        """Download the given mails, in as few round trips as the protocol allows.

        Mails that vanished meanwhile are skipped silently. The core calls this with batches
        of a few dozen keys and commits each batch before asking for the next.
        """

    def sizes(self, keys: Sequence[str]) -> dict[str, int]:
        """Sizes in bytes of the given mails, for those :meth:`list_mail` listed without one.

        The core asks only for mails it is about to download (to keep a batch within its byte
        limit), so listing can stay cheap on big mailboxes kept on the server. The default
        knows none; batches are then bounded by their number of mails only.
        """
        return {}

    @abc.abstractmethod
    def delete(self, keys: Sequence[str]) -> None:
        """Delete exactly these mails on the server (and nothing else), now or at ``close``."""

    def check(self) -> None:
        """Verify the folder exists and is readable; raise :class:`ProtocolError` if not.

        Opening the mailbox has already logged in; the default has nothing more to check.
        """

    def sync_state(self) -> str | None:
        """State to hand back (``ConnectionSettings.sync_state``) at the profile's next cycle, or None.

        The core asks for it only after a cycle stored, and (with delete-on-fetch) deleted, every
        mail :meth:`list_mail` listed, and saves it only then: a cycle that crashed or stopped early
        starts again from the previous state, and the fetch ledger skips what it already stored.
        A protocol that lists incrementally (Graph's delta query) keeps its cursor here; the
        default keeps nothing.
        """
        return None

    def append(self, raw: bytes, folder: str) -> None:
        """Store a copy of a sent mail in ``folder`` (the profile's outgoing folder).

        Only mailboxes that can hold sent mail (IMAP, EWS, Maildir) implement it.
        """
        raise ProtocolError(f"This mailbox cannot store a copy in folder {folder!r}.", "folder")


class Sender(_Closing):
    """An open connection to a profile's outgoing server, reused for several mails."""

    @abc.abstractmethod
    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        """Send one mail; return the recipients the server refused, each with its refusal.

        Raise :class:`SendFailure` only when the transaction as a whole failed: the server could
        not be reached, TLS or the login failed, the envelope sender or the message (DATA) was
        refused. A recipient refused is never raised, even when every recipient is.
        """

    def send_when_ready(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, ready: Callable[[], None]
    ) -> SendReport:
        """Send like :meth:`send`, calling ``ready()`` right before the server can hold the mail.

        The outbox records the previous mail's outcome while this one's envelope is exchanged,
        and ``ready`` waits for that record: so a sender killed at any moment leaves at most one
        delivered mail unrecorded (sent again later). ``ready`` may raise; the mail must then not
        be delivered. This default calls it first, which is always correct; a sender that knows
        its point of delivery (SMTP: the message after DATA's 354) overrides it to overlap more,
        and need not call it at all when the mail never gets there (every recipient refused).
        """
        ready()
        return self.send(envelope_from, recipients, raw)


class MailWaiter(_Closing):
    """A logged-in connection that waits for new mail in one folder (IMAP IDLE, RFC 2177): optional.

    The worker watches hundreds of these from one thread with a selector (docs/architecture.md,
    "IDLE"), so no method may block for long: :meth:`fileno` is what the selector waits on,
    :meth:`read_news` is called only when it is readable. A waiter never fetches: news only starts
    the profile's normal fetch cycle, so every mail still takes the store-before-acknowledge path.
    """

    @abc.abstractmethod
    def fileno(self) -> int:
        """The connection's socket, for the worker's selector."""

    @abc.abstractmethod
    def read_news(self) -> bool:
        """Read what the server sent (the socket is readable); True if new mail arrived.

        Raise :class:`ProtocolError` (kind ``connection``) when the connection broke or the server
        ended the wait; the worker reconnects with back-off.
        """

    @abc.abstractmethod
    def renew(self) -> bool:
        """End and restart the wait before the server's limit (IDLE: 29 minutes); True if new mail arrived meanwhile."""


class ProtocolPlugin(abc.ABC):
    """A mail protocol: a class returned from ``postroom_register_protocols``.

    The class attributes below are everything the core knows about a protocol: it validates
    profiles, fills in defaults and decides about sent copies from them alone, so a vendor's
    protocol is treated exactly like a builtin one. A protocol that comes in a plain and a TLS
    variant on different ports is two classes (``imap``/``imaps``), each with its own ``NAME``
    and ``DEFAULT_PORT``. ``docs/protocols.md`` is the guide, with a complete example.
    """

    #: The protocol's configuration name, as typed in ``--fetch-protocol``/``--send-protocol``.
    NAME: ClassVar[str]
    #: A short human label for ``plugins list``.
    LABEL: ClassVar[str] = ""
    #: Whether profiles may use it as fetch protocol / send protocol.
    CAN_FETCH: ClassVar[bool] = False
    CAN_SEND: ClassVar[bool] = False
    #: Whether a profile must name a host (False for local protocols such as Maildir).
    NEEDS_HOST: ClassVar[bool] = True
    #: The port :class:`ConnectionSettings` carries when a profile gives none (None: no port).
    #: The core fills it in, so ``settings.port`` is never empty when the protocol has a default.
    DEFAULT_PORT: ClassVar[int | None] = None
    #: The incoming folder a profile fetching with this protocol gets when it names none
    #: (``INBOX`` for IMAP, ``Inbox`` for EWS; None: the profile keeps no folder).
    DEFAULT_FOLDER: ClassVar[str | None] = None
    #: Whether the folder is where the mail lives and has no default (a Maildir's path): a
    #: profile must name its incoming folder to fetch, and its outgoing folder to send, with it.
    NEEDS_FOLDER: ClassVar[bool] = False
    #: True when sending through it already stores the sent copy (EWS Sent Items, a Maildir sink),
    #: so the core does not append a copy to the outgoing folder itself.
    KEEPS_SENT_COPY: ClassVar[bool] = False
    #: True when :meth:`open_waiter` may return a waiter (the server may announce new mail, IMAP IDLE).
    CAN_WAIT_FOR_MAIL: ClassVar[bool] = False
    #: True when the protocol's module imports no database code (SQLAlchemy, the models): the
    #: worker's standby, which waits for mail without the database stack, may then list mailboxes
    #: and wait for mail with it; otherwise its profiles are fetched by the engine alone (issue 18,
    #: docs/architecture.md, "Standby"). The standby checks the promise when it imports the module.
    WAITS_IN_STANDBY: ClassVar[bool] = False

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        """Connect, log in and select ``settings.folder``; raise :class:`ProtocolError` on failure."""
        raise ProtocolError(f"Protocol {self.NAME!r} cannot fetch mail.", "protocol")

    def open_waiter(self, settings: ConnectionSettings) -> MailWaiter | None:
        """Connect, log in and start waiting for new mail in ``settings.folder``; None if the server cannot.

        Optional (the default: None, the profile is polled only). Same TLS and login rules as
        :meth:`open_mailbox`; raise :class:`ProtocolError` on failure.
        """
        return None

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        """Connect and log in to the outgoing server; raise :class:`SendFailure` on failure."""
        raise SendFailure(f"Protocol {self.NAME!r} cannot send mail.", kind="internal")
