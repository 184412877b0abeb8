"""The suite's one mail builder, :func:`make_mail`, and :func:`numbered_mail`, mail whose
Message-ID says which one it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import format_datetime, make_msgid
from typing import Literal

_BARE_LINE_FEED = re.compile(r"(?<!\r)\n")


def make_mail(
    subject: str = "Help",
    *,
    sender: str = "Customer <customer@example.org>",
    to: str = "support@acme.test",
    cc: str | Sequence[str] | None = None,
    date: datetime | Literal["now"] | None = "now",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: str = "Hello.\r\n",
) -> bytes:
    """A plain-text mail as a mail client writes it and a server hands it back: CRLF line ends, the
    body as given (bare line feeds made CRLF), header values in ASCII.

    Message-IDs may come with or without angle brackets; a new one is made unless given.
    ``date=None`` leaves the Date header out. In-Reply-To is the last of ``references`` unless given.
    """
    if isinstance(references, str):
        references = references.split()
    if references and in_reply_to is None:
        in_reply_to = references[-1]
    lines = [
        f"From: {sender}",
        f"To: {to}",
        *([f"Cc: {cc if isinstance(cc, str) else ', '.join(cc)}"] if cc else []),
        f"Subject: {subject}",
        *(
            [f"Date: {format_datetime(datetime.now().astimezone() if date == 'now' else date)}"]
            if date
            else []
        ),
        f"Message-ID: {_angled(message_id) if message_id else make_msgid(domain='example.org')}",
        *([f"In-Reply-To: {_angled(in_reply_to)}"] if in_reply_to else []),
        *([f"References: {' '.join(_angled(r) for r in references)}"] if references else []),
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    head = "\r\n".join(lines).encode("ascii")
    return head + b"\r\n\r\n" + _BARE_LINE_FEED.sub("\r\n", body).encode()


def numbered_mail(number: int, *, date: datetime | None = None, tag: str = "mail") -> bytes:
    """Mail ``number`` from customer ``number``, Message-ID ``<tag-number@example.org>``; undated unless ``date``."""
    return make_mail(
        f"Question {number}",
        sender=f"Customer {number} <customer{number}@example.org>",
        to="support@example.test",
        date=date,
        message_id=f"{tag}-{number}@example.org",
        body=f"Hello, this is mail {number}.\r\n",
    )


def _angled(message_id: str) -> str:
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def header_lines_mail(*headers: str | bytes, body: bytes = b"Hello.\r\n") -> bytes:
    """A mail from header lines as given (str is ASCII, bytes may hold raw 8-bit) and a body: for
    mails a client would never write, which :func:`make_mail` cannot build."""
    lines = [h.encode("ascii") if isinstance(h, str) else h for h in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
