"""Reading bounces: the failed recipients (flufl.bounce plus the DSN fields) and the bounced Message-IDs.

flufl.bounce (Mailman's bounce detectors) knows DSN and dozens of non-standard MTA formats;
recognising bounces by hand is a long tail we do not want to own.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import Message

from flufl.bounce import all_failures

_ADDRESS_RE = re.compile(r"[\w.+%-]+@[\w.-]+\.[A-Za-z]{2,}")
_MESSAGE_ID_RE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def _compat_message(raw: bytes) -> Message:
    # flufl.bounce walks the legacy Message API; compat32 also survives broken bounce bodies.
    return email.message_from_bytes(raw, policy=policy.compat32)


def _dsn_failures(message: Message) -> list[str]:
    """Final-Recipient / Original-Recipient of DSN parts whose Action is failed."""
    failed: list[str] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks:
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            if action.startswith("failed") and ";" in recipient:
                failed.append(recipient.split(";", 1)[1].strip().strip("<>").lower())
    return failed


def reported_failures(raw: bytes) -> list[str]:
    """The recipients a delivery status notification (RFC 3464) reports with ``Action: failed``.

    Stricter than :func:`failed_recipients`: a delay notice ("Action: delayed") names nobody.
    """
    return _dsn_failures(_compat_message(raw))


def failed_recipients(raw: bytes) -> list[str]:
    """The permanently failed recipients a bounce names (temporary ones when it names no permanent one)."""
    message = _compat_message(raw)
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector choking on a malformed bounce must not lose the mail
        temporary, permanent = frozenset(), frozenset()
    found = [
        a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in (permanent or temporary)
    ]
    found.extend(_dsn_failures(message))
    cleaned = []
    for address in found:
        match = _ADDRESS_RE.search(address)
        if match:
            cleaned.append(match.group(0).lower())
    # flufl.bounce returns sets; order by where each address first appears in the bounce, so that
    # "the first failed recipient" means the same thing on every run.
    text = raw.decode("utf-8", "replace").lower()
    return sorted(dict.fromkeys(cleaned), key=lambda a: (text.find(a) % (len(text) + 1), a))


def bounced_message_ids(raw: bytes) -> list[str]:
    """Message-IDs of the original mail a bounce returns (attached message or headers, and its threading)."""
    message = _compat_message(raw)
    ids: list[str] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                ids.extend(_MESSAGE_ID_RE.findall(str(inner["Message-ID"])))
        elif content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            headers = email.message_from_bytes(bytes(text), policy=policy.compat32)
            ids.extend(_MESSAGE_ID_RE.findall(str(headers.get("Message-ID", ""))))
    for header in ("In-Reply-To", "References"):
        ids.extend(_MESSAGE_ID_RE.findall(str(message.get(header, ""))))
    return list(dict.fromkeys(ids))
