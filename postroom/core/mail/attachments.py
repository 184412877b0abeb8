"""The bytes of one attachment of a stored mail, found by its place in the message's ``attachments`` list.

A message row lists its attachments (name, type, size) as :func:`postroom.core.mail.parse.parse_mail`
found them; the bytes stay in the raw mail. This walks the raw mail's MIME tree in the same order,
with the same rules for what is a body and what an attachment, so the n-th attachment found here is
the n-th listed. Large bodies are not cut out here: the caller wants them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser

from postroom.core.mail.parse import _COMPAT32, _PARSE_POLICY, _repair, _subparts, _Walk


@dataclass(frozen=True)
class AttachmentData:
    """One attachment: its file name (None when the mail gave none), its MIME type and its decoded bytes."""

    name: str | None
    content_type: str
    data: bytes


class _CollectingWalk(_Walk):
    """The parser's walk, also keeping each attachment's bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[bytes] = []

    def _leaf(self, part: Message, ctype: str) -> None:
        before = len(self.attachments)
        super()._leaf(part, ctype)
        if len(self.attachments) > before:
            payload = part.get_payload(decode=True)
            self.data.append(payload if isinstance(payload, bytes) else b"")

    def _embedded(self, part: Message, ctype: str) -> None:
        before = len(self.attachments)
        super()._embedded(part, ctype)
        if len(self.attachments) > before:
            buffer = io.BytesIO()
            generator = BytesGenerator(buffer, mangle_from_=False, policy=_COMPAT32)
            for sub in _subparts(part):
                generator.flatten(sub)
            self.data.append(buffer.getvalue())


def attachment_data(raw: bytes, index: int) -> AttachmentData | None:
    """The ``index``-th attachment (from 0) of the mail ``raw``, or None when it has fewer."""
    fixed, _notes = _repair(bytes(raw))
    walk = _CollectingWalk()
    walk.run(BytesParser(policy=_PARSE_POLICY).parsebytes(fixed))
    if not 0 <= index < len(walk.data):
        return None
    info = walk.attachments[index]
    return AttachmentData(info.name, info.content_type, walk.data[index])
