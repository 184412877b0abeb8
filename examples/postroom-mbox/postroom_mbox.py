"""A postroom fetch protocol: the mails of a local mbox file (an export, a legacy spool).

A profile fetching with ``mbox`` names the file as its incoming folder; no host, no login. Each
mail's key (its fetch-ledger identity) is the SHA-256 of its bytes, numbered when the same bytes
occur twice, so it does not change between fetches as the file's positions would when a mail
before it is removed. "Delete on fetch" removes the fetched mails from the file under the mbox
lock. The standard library's :mod:`mailbox` reads and locks the file; postroom parses the mail.
"""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

from postroom import (
    ConnectionSettings,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolError,
    ProtocolPlugin,
    Sender,
    SendFailure,
    hookimpl,
)


def _received(from_line: str) -> date | None:
    """The day in an mbox ``From `` line (``sender Mon Nov 30 10:00:00 2026``), or None."""
    parts = from_line.split()
    for start in range(len(parts)):
        try:
            return datetime.strptime(" ".join(parts[start : start + 5]), "%a %b %d %H:%M:%S %Y").date()
        except ValueError:
            continue
    return None


class MboxMailbox(Mailbox):
    """The mails of one mbox file, oldest (first in the file) first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mbox = mailbox.mbox(path, factory=None, create=False)

    def _index(self) -> dict[str, tuple[str, bytes, date | None]]:
        """Key → (mbox position key, raw bytes, day received), in file order."""
        index: dict[str, tuple[str, bytes, date | None]] = {}
        seen: dict[str, int] = {}
        for position in self.mbox.iterkeys():
            message = self.mbox.get_message(position)
            raw = message.as_bytes(unixfrom=False)
            digest = hashlib.sha256(raw).hexdigest()
            seen[digest] = seen.get(digest, 0) + 1
            key = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
            index[key] = (position, raw, _received(message.get_from()))
        return index

    def list_mail(self, since: date | None) -> list[MailRef]:
        return [
            MailRef(key, len(raw))
            for key, (_position, raw, day) in self._index().items()
            if since is None or day is None or day >= since
        ]

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        index = self._index()
        for key in keys:
            if key in index:  # a mail removed meanwhile is skipped
                yield FetchedMail(key, index[key][1])

    def delete(self, keys: Sequence[str]) -> None:
        self.mbox.lock()
        try:
            index = self._index()
            for key in keys:
                if key in index:
                    self.mbox.discard(index[key][0])
            self.mbox.flush()
        finally:
            self.mbox.unlock()

    def close(self) -> None:
        self.mbox.close()


class MboxProtocol(ProtocolPlugin):
    """Fetch from a local mbox file; the profile's incoming folder is the file's path."""

    NAME = "mbox"
    LABEL = "Local mbox file (fetch only)"
    CAN_FETCH = True
    CAN_SEND = False
    NEEDS_HOST = False
    NEEDS_FOLDER = True

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        path = Path(settings.folder or "").expanduser()
        if not settings.folder or not path.is_file():
            raise ProtocolError(
                f"Profile {settings.profile_name!r}: the mbox file {str(path)!r} does not exist.", "folder"
            )
        return MboxMailbox(path)

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        raise SendFailure("The mbox protocol cannot send mail.", kind="internal")


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [MboxProtocol]
