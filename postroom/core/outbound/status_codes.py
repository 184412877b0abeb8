"""RFC 3463 enhanced status codes: find one in a server's reply and name the error category it implies.

Pure functions shared by the builtin classifier plugin and the core, which stores the code of
every failed attempt in ``failed_message_send_info``.
"""

from __future__ import annotations

import re

from postroom.core.contract.retry import ErrorCategory

# class "." subject "." detail; subject and detail have 1-3 digits (RFC 3463 section 2).
_CODE = r"[245]\.\d{1,3}\.\d{1,3}"
# Where RFC 2034 puts it: first in the reply text, after an optional reply code ("550-" or "550 ").
_AT_START = re.compile(rf"\s*(?:\d{{3}}[ -]\s*)?({_CODE})(?!\.?\d)")
# Inside a sentence postroom wrote around a reply ("... (535 5.7.8 Authentication failed)."): only
# behind a reply code of the same class, so version numbers and addresses are never mistaken for one.
_AFTER_REPLY_CODE = re.compile(r"(?<![\w.])([245])\d\d[ -]\s*(\1\.\d{1,3}\.\d{1,3})(?!\.?\d)")

SUBJECT_CATEGORIES: dict[int, ErrorCategory] = {
    1: ErrorCategory.ADDRESSING,
    2: ErrorCategory.MAILBOX,
    3: ErrorCategory.MAIL_SYSTEM,
    4: ErrorCategory.NETWORK_ROUTING,
    5: ErrorCategory.DELIVERY_PROTOCOL,
    6: ErrorCategory.MESSAGE_CONTENT,
    7: ErrorCategory.SECURITY_POLICY,
}


def parse_enhanced_status(text: str | None) -> str | None:
    """The enhanced status code (``"5.1.1"``) on the first line of a reply, or None if it has none.

    Only the first line counts: the later lines of a multi-line reply (``550-5.1.1 ...``) may
    repeat or vary the code, and the first is the one the server leads with.
    """
    lines = (text or "").strip().splitlines()
    if not lines:
        return None
    first_line = lines[0]
    match = _AT_START.match(first_line)
    if match:
        return match.group(1)
    match = _AFTER_REPLY_CODE.search(first_line)
    return match.group(2) if match else None


def category_for_enhanced_status(code: str | None) -> ErrorCategory | None:
    """The error category of an enhanced status code by its subject (X.1.X addressing ... X.7.X security).

    None for a missing code or a subject outside 1-7 (X.0.X "other" says nothing about the cause).
    """
    if not code:
        return None
    parts = code.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return SUBJECT_CATEGORIES.get(int(parts[1]))
