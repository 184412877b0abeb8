"""The mailboxes of the Microsoft Graph STAND-IN (tests/servers/graph_server.py): folders, messages, changes.

No Graph service can run here; this is the stand-in's record of what a test's mailbox holds, with
what Graph's delta query needs: every change to a folder numbered, so a delta token is a position
in that history. Ids come in both of Graph's forms: the default REST id changes when a message
moves, the immutable id (``Prefer: IdType="ImmutableId"``) never does.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Graph's well-known folder names; every stand-in mailbox has these.
WELL_KNOWN = ("inbox", "sentitems", "deleteditems", "drafts", "junkemail", "archive", "outbox")
_sequence = itertools.count(1)


def new_id(kind: str) -> str:
    return f"AAMk{kind}{uuid.uuid4().hex}"


@dataclass
class StoredMessage:
    """One message in a folder: its MIME, when it arrived, both of its ids."""

    immutable_id: str
    rest_id: str
    raw: bytes
    received: datetime
    folder: str
    is_draft: bool = False
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)

    def graph_json(self, immutable: bool, select: list[str] | None) -> dict[str, object]:
        full: dict[str, object] = {
            "id": self.immutable_id if immutable else self.rest_id,
            "receivedDateTime": self.received.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "parentFolderId": self.folder,
            "isDraft": self.is_draft,
        }
        if select is None:
            return full
        return {k: v for k, v in full.items() if k == "id" or k in select}


@dataclass
class SentMail:
    """A message the stand-in accepted for sending: its MIME, recipients, added attachments, and how."""

    raw: bytes
    recipients: list[str]
    via: str  # "sendMail" or "draft+send"
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)


@dataclass
class Change:
    sequence: int
    folder: str
    message_id: str  # immutable


@dataclass
class GraphMailbox:
    address: str
    messages: dict[str, StoredMessage] = field(default_factory=dict)  # by immutable id
    changes: list[Change] = field(default_factory=list)
    sent: list[SentMail] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # immutable ids, in order (to Recoverable Items)

    def find(self, any_id: str) -> StoredMessage | None:
        found = self.messages.get(any_id)
        if found is not None:
            return found
        return next((m for m in self.messages.values() if m.rest_id == any_id), None)

    def touch(self, folder: str, message_id: str) -> None:
        self.changes.append(Change(next(_sequence), folder, message_id))

    def put(
        self, raw: bytes, folder: str, received: datetime | None = None, is_draft: bool = False
    ) -> StoredMessage:
        message = StoredMessage(
            new_id("I"), new_id("R"), raw, (received or datetime.now(UTC)).astimezone(UTC), folder, is_draft
        )
        self.messages[message.immutable_id] = message
        self.touch(folder, message.immutable_id)
        return message

    def remove(self, message: StoredMessage) -> None:
        del self.messages[message.immutable_id]
        self.touch(message.folder, message.immutable_id)

    def move(self, message: StoredMessage, folder: str) -> None:
        self.touch(message.folder, message.immutable_id)
        message.folder = folder
        message.rest_id = new_id("R")  # Graph's default id changes with the folder; the immutable one not
        self.touch(folder, message.immutable_id)

    def in_folder(self, folder: str) -> list[StoredMessage]:
        return sorted((m for m in self.messages.values() if m.folder == folder), key=lambda m: m.received)

    def changed_since(self, folder: str, sequence: int) -> tuple[list[StoredMessage], list[str], int]:
        """Messages now in ``folder`` touched after ``sequence``, ids that left it, and the latest sequence."""
        touched = list(
            dict.fromkeys(c.message_id for c in self.changes if c.folder == folder and c.sequence > sequence)
        )
        present, removed = [], []
        for message_id in touched:
            message = self.messages.get(message_id)
            if message is not None and message.folder == folder:
                present.append(message)
            else:
                removed.append(message_id)
        return present, removed, self.latest()

    def latest(self) -> int:
        return self.changes[-1].sequence if self.changes else 0
