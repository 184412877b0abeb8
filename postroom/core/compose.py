"""Composing an agent's reply: the draft plugins may adjust, then the MIME message that is queued."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OutgoingDraft:
    """A reply being composed; ``postroom_compose_outgoing`` plugins change it in place before it is queued."""

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
