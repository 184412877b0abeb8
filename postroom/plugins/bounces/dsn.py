"""The standard delivery report (RFC 3464): per-recipient blocks of a ``message/delivery-status`` part.

Read field by field rather than as blank-line separated blocks, because AOL sends the recipient
blocks without the blank line between them (a new block starts at each Final-Recipient). When no
delivery-status part can be found - the boundary in the header does not match the body's, or the
server (Amazon WorkMail) writes the fields into its text - the same fields are read from the text.
"""

from __future__ import annotations

import re
from email.message import Message

from postroom.core.contract.bounces import BounceReport, FailedRecipient
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.mail import ParsedMail
from postroom.core.mail.bounces import compat_message, looks_like_bounce

_FIELD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_HAS_FIELDS = re.compile(rb"(?i)final-recipient\s*:")
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")
#: A report is read up to this many recipient blocks (a hostile one may hold millions).
_MAX_BLOCKS = 500


def _fields(text: str) -> list[tuple[str, str]]:
    """(lower-case name, value) of every field line, continuation lines unfolded."""
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
            continue
        match = _FIELD_RE.match(line.strip())
        if match:
            fields.append((match.group(1).lower(), match.group(2).strip()))
    return fields


def _address(value: str) -> str:
    return value.split(";", 1)[-1].strip().strip("<>").strip()


def read_fields(text: str, format_name: str) -> BounceReport | None:
    """The failed recipients of the delivery-status fields in ``text`` (None: no failed recipient)."""
    blocks: list[dict[str, str]] = []
    reporting = None
    for name, value in _fields(text):
        if name == "reporting-mta":
            reporting = reporting or _address(value)
            continue
        if name in _RECIPIENT_FIELDS:
            current = blocks[-1] if blocks else None
            if current is None or name in current:
                blocks.append({})
        if blocks:
            blocks[-1].setdefault(name, value)
    failed = []
    for block in blocks[:_MAX_BLOCKS]:
        action = block.get("action", "").lower()
        status = block.get("status", "").split()[0] if block.get("status") else None
        if action and not action.startswith("failed"):
            continue
        if not action and not (status or "").startswith("5"):
            continue
        address = _address(block.get("final-recipient") or block.get("original-recipient", ""))
        if "@" in address:
            diagnostic = block.get("diagnostic-code", "").split(";", 1)[-1].strip()
            failed.append(FailedRecipient(address=address, status=status, diagnostic=diagnostic))
    if not failed:
        return None
    return BounceReport(format=format_name, recipients=failed, reporting_server=reporting)


def _status_parts_text(root: Message) -> str:
    texts = []
    for part in root.walk():
        if part.get_content_type() not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            texts.append("\n".join(block.as_string() for block in payload if isinstance(block, Message)))
        else:
            data = part.get_payload(decode=True)
            texts.append(bytes(data).decode("utf-8", "replace") if isinstance(data, bytes) else str(payload))
    return "\n".join(texts)


@hookimpl
def postroom_read_bounce(message: ParsedMail) -> BounceReport | None:
    if not looks_like_bounce(message) or not _HAS_FIELDS.search(message.raw):
        return None
    text = _status_parts_text(compat_message(message.raw))
    if text:
        report = read_fields(text, "rfc3464")
        if report is not None:
            return report
    # No readable status part: a boundary that matches nothing, or the fields written as text.
    body = message.text or ""
    if "final-recipient" not in body.lower():
        body = message.raw.decode("utf-8", "replace")
    return read_fields(body, "rfc3464 (text)")
