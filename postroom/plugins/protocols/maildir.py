"""The builtin ``maildir`` protocol: a local Maildir as mailbox and as sink for sent mail, without network."""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator, Sequence
from datetime import date
from functools import cached_property
from pathlib import Path

from postroom.core.contract.hooks import hookimpl
from postroom.plugins.protocols.base import (
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


def maildir_path(path: str, create: bool) -> Path:
    """The Maildir at ``path``, checked to have cur/new/tmp; with ``create``, made when missing."""
    folder = Path(path).expanduser()
    try:
        if create:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise ProtocolError(
            f"The Maildir {str(folder)!r} could not be created: {error.strerror or error}.", "folder"
        ) from error
    # String paths, not ``folder / sub``: every fetch cycle checks, and pathlib's joins cost more.
    root = str(folder)
    if not all(os.path.isdir(os.path.join(root, sub)) for sub in ("cur", "new", "tmp")):
        raise ProtocolError(f"The Maildir {str(folder)!r} does not exist (no cur/new/tmp there).", "folder")
    return folder


def open_maildir(path: Path) -> mailbox.Maildir:
    """Raw bytes in and out (``factory=None``): postroom parses mail itself."""
    return mailbox.Maildir(path, factory=None, create=False)


class MaildirMailbox(Mailbox):
    """The mails of one local Maildir, keyed by their Maildir key (the file name before ``:2,``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._root = str(path)

    @cached_property
    def maildir(self) -> mailbox.Maildir:
        """The stdlib's Maildir, opened when first needed: an empty listing does without it."""
        return open_maildir(self.path)

    def _delivery_times(self) -> dict[str, float]:
        """Key → mtime of its file, which is when the mail was delivered into the Maildir."""
        times = {}
        colon = mailbox.Maildir.colon
        for sub in ("new", "cur"):
            with os.scandir(os.path.join(self._root, sub)) as entries:
                for entry in entries:
                    if not entry.name.startswith("."):
                        times[entry.name.split(colon)[0]] = entry.stat().st_mtime
        return times

    def list_mail(self, since: date | None) -> list[MailRef]:
        """Every mail, oldest delivery first; with ``since``, those delivered on or after that day."""
        times = self._delivery_times()
        if not times:
            return []  # empty: no need for the stdlib's own scan of new/ and cur/ (every empty poll)
        keys = [key for key in self.maildir.iterkeys() if key in times]
        if since is not None:
            keys = [key for key in keys if date.fromtimestamp(times[key]) >= since]
        return [MailRef(key) for key in sorted(keys, key=lambda key: (times[key], key))]

    def fetch(self, keys: Sequence[str]) -> Iterator[FetchedMail]:
        for key in keys:
            try:
                raw = self.maildir.get_bytes(key)
            except (KeyError, FileNotFoundError):  # removed meanwhile
                continue
            yield FetchedMail(key, raw)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.maildir.discard(key)

    def append(self, raw: bytes, folder: str) -> None:
        """Write a copy into the Maildir at path ``folder``, created when missing."""
        open_maildir(maildir_path(folder, create=True)).add(raw)

    def close(self) -> None:
        """Nothing to close: every operation went straight to the file system."""


class MaildirSender(Sender):
    """Writes each sent mail, raw, into ``new/`` of a local Maildir (atomically: tmp/, then a rename).

    A Maildir has no recipients to refuse: every send delivers the mail, once, whoever it is for.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.maildir = open_maildir(path)

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        self.maildir.add(raw)
        return SendReport()

    def close(self) -> None:
        """Nothing to close: each mail was written as it was sent."""


class MaildirProtocol(ProtocolPlugin):
    """A local Maildir directory: the folder setting is its path, no host or port.

    As fetch protocol it reads the Maildir named by the incoming folder; as send protocol it
    writes each sent mail into the Maildir named by the outgoing folder, which is then also the
    copy of the sent mail (hence ``KEEPS_SENT_COPY``).
    """

    NAME = "maildir"
    LABEL = "Local Maildir (no network)"
    CAN_FETCH = True
    CAN_SEND = True
    NEEDS_HOST = False
    WAITS_IN_STANDBY = True
    NEEDS_FOLDER = True
    KEEPS_SENT_COPY = True

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        if not settings.folder:
            raise ProtocolError(
                f"Profile {settings.profile_name!r} names no incoming folder; "
                "for maildir it is the path of the Maildir to read.",
                "folder",
            )
        return MaildirMailbox(maildir_path(settings.folder, create=False))

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        if not settings.folder:
            raise SendFailure(
                f"Profile {settings.profile_name!r} names no outgoing folder; "
                "for maildir it is the path of the Maildir sent mail is written to.",
                kind="folder",
            )
        try:
            return MaildirSender(maildir_path(settings.folder, create=True))
        except ProtocolError as error:
            raise SendFailure(str(error), kind="folder") from error


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [MaildirProtocol]
