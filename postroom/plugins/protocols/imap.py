"""The builtin IMAP protocols: ``imap`` (143, STARTTLS before the login) and ``imaps`` (993, implicit TLS)."""

from __future__ import annotations

import imaplib
import logging
import re
import threading
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import ClassVar

from imapclient import DELETED, SEEN, IMAPClient

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.protocols import MailWaiter
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
)

log = logging.getLogger(__name__)

WHAT = "IMAP server"
#: UIDs per command when asking for sizes (about 7 KB of command line).
SIZE_QUERY_UIDS = 1000

#: The UIDs each folder held at its last full listing in this process, by server, user, folder
#: and UIDVALIDITY, so the next listing asks only for the UIDs above them (see
#: ``ImapMailbox.list_mail``). Kept as 4-byte arrays: 400 KB for a folder of 100,000 mails.
_listed: dict[tuple[str | None, int | None, str | None, str, int], array[int]] = {}
_listed_lock = threading.Lock()


def server_text(error: BaseException) -> str:
    """The server's words from an imaplib/imapclient error, without the ``b'…'`` wrapping they carry."""
    text = str(error)
    if len(text) > 3 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
        text = text[2:-1]
    return text.strip().rstrip(".")


@contextmanager
def talking_to(settings: ConnectionSettings) -> Iterator[None]:
    """Turn a broken connection or an unexpected server refusal into a :class:`ProtocolError`."""
    try:
        yield
    except ProtocolError:
        raise
    except imaplib.IMAP4.abort as error:
        raise ProtocolError(
            f"The connection to {WHAT} {settings.host}:{settings.port} broke: {server_text(error)}.",
            "connection",
        ) from error
    except imaplib.IMAP4.error as error:
        raise ProtocolError(
            f"The {WHAT} {settings.host}:{settings.port} refused a command: {server_text(error)}.", "protocol"
        ) from error
    except OSError as error:
        raise connection_failure(error, WHAT, settings) from error


def connect(settings: ConnectionSettings, implicit_tls: bool) -> IMAPClient:
    """Connect (with TLS, or STARTTLS; in clear only if the profile allows it) and log in; the caller owns the client."""
    if not settings.host:
        raise ProtocolError(f"Profile {settings.profile_name!r} has no incoming host for IMAP.", "connection")
    context = tls_context(settings)
    try:
        client = IMAPClient(
            settings.host,
            settings.port,
            ssl=implicit_tls,
            ssl_context=context if implicit_tls else None,
            timeout=settings.timeout,
        )
    except OSError as error:
        raise connection_failure(error, WHAT, settings) from error
    except imaplib.IMAP4.error as error:
        raise not_this_protocol(settings) from error
    quiet_imaplib(client)
    try:
        with talking_to(settings):
            if not implicit_tls:
                if client.has_capability("STARTTLS"):
                    client.starttls(context)
                elif not settings.allow_plaintext_login:
                    raise ProtocolError(plaintext_login_refused(settings, WHAT, "STARTTLS", "imaps"), "tls")
                else:
                    log.warning(
                        "The %s %s:%s offers no STARTTLS; logging in unencrypted as profile %r allows.",
                        WHAT,
                        settings.host,
                        settings.port,
                        settings.profile_name,
                    )
        login(client, settings)
    except BaseException:
        close_quietly(client)
        raise
    return client


class _ImaplibDebugLevel:
    """imaplib's debug level: imapclient's 5 while the ``imapclient.imaplib`` logger shows debug messages, else 0.

    imapclient sets the level to 5 and sends imaplib's messages to that logger, but imaplib builds
    them first, among them the repr of every response with the fetched mails: a 25 MB mail cost
    60 MB more memory and the time to format it, for a logger that is usually off. imaplib only
    ever asks ``debug >= n``, so this answers from the logger's level at the time of asking.
    """

    LOGGER = logging.getLogger("imapclient.imaplib")

    def __ge__(self, level: int) -> bool:
        return level <= 5 and self.LOGGER.isEnabledFor(logging.DEBUG)


def quiet_imaplib(client: IMAPClient) -> None:
    """Let imaplib format its debug messages only while someone reads them (see _ImaplibDebugLevel)."""
    client._imap.debug = _ImaplibDebugLevel()


def not_this_protocol(settings: ConnectionSettings) -> ProtocolError:
    return ProtocolError(
        f"The server at {settings.host}:{settings.port} did not greet like an IMAP server; "
        f"check the incoming port and protocol of profile {settings.profile_name!r}.",
        "protocol",
    )


def login(client: IMAPClient, settings: ConnectionSettings) -> None:
    """Log in with the profile's password, or with XOAUTH2 when the profile has an access token."""
    username = settings.username or ""
    with talking_to(settings):
        try:
            if settings.access_token:
                client.oauth2_login(username, settings.access_token)
            else:
                client.login(username, settings.password or "")
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as error:
            # The server's reply never echoes the password, so it is safe to show.
            raise ProtocolError(
                f"The {WHAT} {settings.host}:{settings.port} refused the login {username!r}: "
                f"{server_text(error)}.",
                "auth",
            ) from error


def close_quietly(client: IMAPClient) -> None:
    """Log out, or just drop the connection when logging out fails."""
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            log.debug("Closing an IMAP connection failed", exc_info=True)


class ImapMailbox(Mailbox):
    """A logged-in IMAP session with the profile's folder selected.

    Keys are ``folder/UIDVALIDITY/UID``: a folder whose UIDVALIDITY changed has new identities
    for all its mails, so keys of the old generation simply no longer match anything.
    Mails are read with ``BODY.PEEK[]`` so fetching never marks them ``\\Seen``.
    """

    def __init__(self, client: IMAPClient, settings: ConnectionSettings, folder: str) -> None:
        self.client = client
        self.settings = settings
        self.folder = folder
        self._awaiting_expunge: set[int] = set()
        with talking_to(settings):
            try:
                selected = client.select_folder(folder)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as error:
                raise self._missing_folder(folder, server_text(error)) from error
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        self._prefix = f"{folder}/{self.uidvalidity}/"  # of every key: folder/UIDVALIDITY/UID
        #: How many mails the folder held when it was selected (None if the server did not say).
        self.exists: int | None = int(selected[b"EXISTS"]) if b"EXISTS" in selected else None

    def _missing_folder(self, folder: str, reason: str = "") -> ProtocolError:
        where = f"{WHAT} {self.settings.host}:{self.settings.port} (profile {self.settings.profile_name!r})"
        # Dovecot appends its timings, "(0.002 + 0.000 + 0.001 secs)": noise in an operator's message.
        reason = re.sub(r"\s*\([\d.+ ]+secs\)\s*$", "", reason).rstrip(".")
        missing = "NONEXISTENT" in reason.upper() or re.search(r"does(n't| not) exist", reason, re.IGNORECASE)
        if reason and not missing:
            return ProtocolError(
                f"The folder {folder!r} cannot be opened on the {where}: {reason}.", "folder"
            )
        return ProtocolError(f"The folder {folder!r} does not exist on the {where}.", "folder")

    def _key(self, uid: int) -> str:
        return self._prefix + str(uid)

    def _uids(self, keys: Sequence[str]) -> list[int]:
        """The UIDs of those keys that belong to this folder's current UIDVALIDITY."""
        uids = []
        for key in keys:
            folder, _, rest = key.rpartition("/")
            folder, _, uidvalidity = folder.rpartition("/")
            if folder == self.folder and uidvalidity == str(self.uidvalidity) and rest.isdigit():
                uids.append(int(rest))
        return uids

    def list_mail(self, since: date | None) -> list[MailRef]:
        """Every mail in the folder by UID (oldest first); with ``since``, by IMAP internal date.

        One ``UID SEARCH``, no sizes: a mailbox kept on the server may hold a hundred thousand
        mails, and the core asks :meth:`sizes` only for the ones it is going to download. Mails
        flagged ``\\Deleted`` but not yet expunged are listed; the fetch ledger keeps them from
        being stored twice.

        A folder listed before in this process (same UIDVALIDITY) is asked only for the UIDs
        above its highest known one. UIDs only grow, so when the known ones plus the new ones
        add up to the count the folder reported at SELECT, none of the known ones can have
        gone; otherwise (another client expunged, or mail arrived meanwhile) the whole folder
        is listed again.
        """
        with talking_to(self.settings):
            uids = sorted(self.client.search(["SINCE", since])) if since else self._all_uids()
        prefix = self._prefix  # what _key writes, without a call per mail of a large folder
        return [MailRef(prefix + str(uid)) for uid in uids]

    def _listing(self) -> tuple[str | None, int | None, str | None, str, int]:
        settings = self.settings
        return (settings.host, settings.port, settings.username, self.folder, self.uidvalidity)

    def _all_uids(self) -> array[int]:
        with _listed_lock:
            known = _listed.get(self._listing())
        uids: array[int] | None = None
        if known is not None and self.exists is not None:
            start = known[-1] + 1 if known else 1
            # "n:*" also matches the highest UID when n is above it (RFC 3501), hence the filter.
            new = sorted(uid for uid in self.client.search(["UID", f"{start}:*"]) if uid >= start)
            if len(known) + len(new) == self.exists:
                uids = known + array("L", new)
        if uids is None:
            uids = array("L", sorted(self.client.search(["ALL"])))
        with _listed_lock:
            _listed[self._listing()] = uids
        return uids

    def sizes(self, keys: Sequence[str]) -> dict[str, int]:
        """``RFC822.SIZE`` of the given mails, in slices (a command listing tens of thousands of UIDs
        is over servers' limits)."""
        uids = sorted(self._uids(keys))
        found: dict[str, int] = {}
        with talking_to(self.settings):
            for start in range(0, len(uids), SIZE_QUERY_UIDS):
                response = self.client.fetch(uids[start : start + SIZE_QUERY_UIDS], ["RFC822.SIZE"])
                for uid, data in response.items():
                    size = data.get(b"RFC822.SIZE")
                    if size is not None:
                        found[self._key(uid)] = int(size)
        return found

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        """All the given mails in one ``UID FETCH``, yielded in the order asked for."""
        wanted = {uid: self._key(uid) for uid in self._uids(keys)}
        if not wanted:
            return
        with talking_to(self.settings):
            response = self.client.fetch(list(wanted), ["BODY.PEEK[]"])
        for uid, key in wanted.items():
            raw = response.get(uid, {}).get(b"BODY[]")
            if raw is not None:
                yield FetchedMail(key, bytes(raw))

    def delete(self, keys: Sequence[str]) -> None:
        """Flag exactly these mails ``\\Deleted`` and expunge them, and never anyone else's.

        With UIDPLUS, ``UID EXPUNGE`` removes only these UIDs. Without it, a plain ``EXPUNGE``
        would also remove mails another client flagged ``\\Deleted`` and meant to keep
        undeletable until it expunges itself; so ours stay flagged until a later ``delete`` or
        ``close`` finds no foreign flagged mail. Flagged mails are in the ledger already, so
        the delay never fetches them twice.
        """
        uids = self._uids(keys)
        if not uids:
            return
        with _listed_lock:
            _listed.pop(self._listing(), None)  # the next listing is a whole one
        with talking_to(self.settings):
            self.client.add_flags(uids, [DELETED], silent=True)
            if self.client.has_capability("UIDPLUS"):
                self.client.uid_expunge(uids)
            else:
                self._awaiting_expunge.update(uids)
                self._expunge_if_only_ours()

    def _expunge_if_only_ours(self) -> None:
        # NOOP first: Dovecot shows another session's flag changes only at a sync point.
        self.client.noop()
        flagged = set(self.client.search(["DELETED"]))
        if flagged <= self._awaiting_expunge:
            self.client.expunge()
            self._awaiting_expunge.clear()
        else:
            log.info(
                "Leaving %d mails flagged \\Deleted in %r on %s:%s: other mails are flagged too.",
                len(self._awaiting_expunge),
                self.folder,
                self.settings.host,
                self.settings.port,
            )

    def check(self) -> None:
        with talking_to(self.settings):
            if not self.client.folder_exists(self.folder):
                raise self._missing_folder(self.folder)

    def append(self, raw: bytes, folder: str) -> None:
        """Store a sent mail in ``folder`` (creating the folder if needed), already marked ``\\Seen``."""
        with talking_to(self.settings):
            if not self.client.folder_exists(folder):
                try:
                    self.client.create_folder(folder)
                except imaplib.IMAP4.abort:
                    raise
                except imaplib.IMAP4.error as error:
                    raise ProtocolError(
                        f"The folder {folder!r} could not be created on the {WHAT} "
                        f"{self.settings.host}:{self.settings.port}: {server_text(error)}.",
                        "folder",
                    ) from error
            self.client.append(folder, raw, flags=[SEEN])

    def close(self) -> None:
        if self._awaiting_expunge:
            try:
                self._expunge_if_only_ours()
            except Exception:
                log.debug("Expunging at close failed", exc_info=True)
        close_quietly(self.client)


class ImapProtocol(ProtocolPlugin):
    """IMAP on port 143, upgraded with STARTTLS before the login (in clear only if the profile allows it)."""

    NAME = "imap"
    LABEL = "IMAP (STARTTLS)"
    DEFAULT_PORT: ClassVar[int | None] = 143
    DEFAULT_FOLDER: ClassVar[str] = "INBOX"
    CAN_FETCH = True
    CAN_WAIT_FOR_MAIL = True
    WAITS_IN_STANDBY = True
    IMPLICIT_TLS: ClassVar[bool] = False

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        client = connect(settings, self.IMPLICIT_TLS)
        try:
            return ImapMailbox(client, settings, settings.folder or self.DEFAULT_FOLDER)
        except BaseException:
            close_quietly(client)
            raise

    def open_waiter(self, settings: ConnectionSettings) -> MailWaiter | None:
        # Imported here: imap_idle builds on this module's connect and login.
        from postroom.plugins.protocols.imap_idle import open_waiter

        return open_waiter(settings, self.IMPLICIT_TLS, settings.folder or self.DEFAULT_FOLDER)


class ImapsProtocol(ImapProtocol):
    """IMAP inside TLS from the first byte, on port 993."""

    NAME = "imaps"
    LABEL = "IMAP over TLS"
    DEFAULT_PORT: ClassVar[int | None] = 993
    IMPLICIT_TLS: ClassVar[bool] = True


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [ImapProtocol, ImapsProtocol]
