"""A parsed inbound mail, as filters, routers and resolvers receive it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message


@dataclass
class AttachmentInfo:
    """An attachment as listed on a message: attached mails (message/rfc822) count as attachments."""

    name: str | None
    content_type: str
    size: int


@dataclass
class ParsedMail:
    """The fields of one inbound mail.

    ``headers`` is the parsed message with policy.default, for filters that need more than the fields;
    :meth:`header` reads it without ever raising, where ``headers["x"]`` may raise on a broken header.
    In a very large mail the big base64 bodies of non-text parts are not in ``headers`` but only in
    ``raw`` (see large_mail.py); their attachments are listed with their real sizes all the same.
    """

    raw: bytes = field(repr=False)
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    from_address: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    subject: str
    date: datetime | None
    auto_submitted: str | None
    text: str | None = field(repr=False)
    html: str | None = field(repr=False)
    attachments: list[AttachmentInfo]
    defects: list[str]
    headers: Message = field(repr=False, compare=False)
    #: Charsets the mail declares, used as hints when headers carry raw 8-bit bytes.
    charset_hints: tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: How the parser decodes a raw header value (encoded words, raw 8-bit bytes) with those hints;
    #: handed in by the parser, so that this contract type carries no parsing code of its own.
    decode_header: Callable[[str, tuple[str, ...]], str] = field(
        default=lambda value, hints: value, repr=False, compare=False
    )

    @property
    def all_recipients(self) -> list[str]:
        """To and Cc addresses, each once, in order."""
        return list(dict.fromkeys(self.to + self.cc))

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), decoded and unfolded, or None if there is none."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        """Every header called ``name`` (any case), decoded and unfolded, in order."""
        wanted = name.lower()
        return [
            self.decode_header(value, self.charset_hints)
            for key, value in self.headers.raw_items()
            if key.lower() == wanted
        ]
