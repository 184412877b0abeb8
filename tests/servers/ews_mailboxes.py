"""The in-memory mailboxes of the EWS STAND-IN (tests/servers/ews_responder.py): folders, items, sent mail.

No Exchange server can run here; these are the stand-in's records of what a test's mailbox holds.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime

NOT_FOUND = "The specified object was not found in the store."

#: The distinguished folders every mailbox has: id -> (display name, parent's distinguished id).
DISTINGUISHED = {
    "root": ("", None),
    "msgfolderroot": ("Top of Information Store", "root"),
    "inbox": ("Inbox", "msgfolderroot"),
    "sentitems": ("Sent Items", "msgfolderroot"),
    "deleteditems": ("Deleted Items", "msgfolderroot"),
    "drafts": ("Drafts", "msgfolderroot"),
    "junkemail": ("Junk Email", "msgfolderroot"),
    "outbox": ("Outbox", "msgfolderroot"),
}
#: PidTagMessageFlags: a message created without it (or with MSGFLAG_UNSENT) is a draft, as in Exchange.
MESSAGE_FLAGS_TAG = 0x0E07
MSGFLAG_UNSENT = 0x8


def _new_id(kind: str) -> str:
    return base64.b64encode(f"{kind}:".encode() + uuid.uuid4().bytes).decode()



@dataclass
class StoredItem:
    """One message in a folder of the stand-in mailbox."""

    item_id: str
    raw: bytes
    received: datetime
    is_draft: bool = False
    is_read: bool = False


@dataclass
class SentMail:
    """A message the stand-in accepted for sending: who it went to and whether a copy was saved."""

    raw: bytes
    recipients: list[str]
    saved_copy: bool


@dataclass
class Deletion:
    item_id: str
    delete_type: str


@dataclass
class Folder:
    folder_id: str
    name: str
    parent_id: str | None
    distinguished: str | None = None
    items: dict[str, StoredItem] = field(default_factory=dict)


@dataclass
class Mailbox:
    address: str
    password: str
    token: str | None = None
    folders: dict[str, Folder] = field(default_factory=dict)
    sent: list[SentMail] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)

    def distinguished(self, name: str) -> Folder | None:
        return next((f for f in self.folders.values() if f.distinguished == name.lower()), None)

    def children(self, parent: Folder) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == parent.folder_id]

    def by_path(self, path: str) -> Folder:
        """Resolve ``Inbox/Support`` below the top of the information store, case-insensitively."""
        folder = self.distinguished("msgfolderroot")
        assert folder is not None
        for name in [p for p in path.split("/") if p]:
            match = [f for f in self.children(folder) if f.name.casefold() == name.casefold()]
            if not match:
                raise KeyError(f"no folder {path!r} in the mailbox of {self.address}")
            folder = match[0]
        return folder


class SoapFault(Exception):
    """A request the stand-in cannot answer; sent back as a SOAP fault so the test sees it."""
