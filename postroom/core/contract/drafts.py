"""An outgoing reply as plugins see it before it is queued (hook ``postroom_compose_outgoing``)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from postroom.core.contract.errors import UserError


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class OutgoingAttachment:
    """A file sent with a reply: its name as the customer sees it, its MIME type and its bytes."""

    filename: str
    content_type: str
    data: bytes

    @classmethod
    def from_file(cls, path: Path) -> OutgoingAttachment:
        """The file at ``path``, its type guessed from its name (``application/octet-stream`` if unknown)."""
        try:
            data = path.read_bytes()
        except OSError as error:
            raise UserError(
                f"The attachment {str(path)!r} cannot be read: {error.strerror or error}."
            ) from error
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(path.name, content_type, data)


@dataclass
class OutgoingDraft:
    """A reply being composed; ``postroom_compose_outgoing`` plugins change it in place before it is queued.

    The body is kept in pieces and put together only when the mail is built: the agent's words
    (``text``, ``html``), the signature (``signature_text``, ``signature_html``, set by the builtin
    signature plugin) and the quoted mail (``quote_text``, ``quote_html``); the signature goes
    before or after the quote (``signature_position``). ``message_id`` and the ids in
    ``in_reply_to``/``references`` are bare, without angle brackets.
    """

    ticket_id: int
    profile_id: int
    from_name: str | None
    from_address: str
    to: list[str]
    cc: list[str]
    subject: str
    text: str
    html: str
    message_id: str
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    agent_name: str | None = None
    #: Extra headers to add (name -> value); CR/LF in values is refused when the mail is built.
    headers: dict[str, str] = field(default_factory=dict)
    customer_name: str | None = None
    campaign: str | None = None
    profile_name: str | None = None
    case_token: str | None = None
    date: datetime = field(default_factory=_now)
    quote_text: str = ""
    quote_html: str = ""
    signature_text: str = ""
    signature_html: str = ""
    #: "before" or "after" the quoted text.
    signature_position: str = "before"
    #: Sent by postroom itself, not written by an agent: marked ``Auto-Submitted: auto-replied``.
    automatic: bool = False
    #: Files sent with the reply, after the text and HTML parts.
    attachments: list[OutgoingAttachment] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients: To, then Cc, each once."""
        return list(dict.fromkeys([*self.to, *self.cc]))
