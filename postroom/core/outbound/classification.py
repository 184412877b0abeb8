"""What kind of error a failed send met: its category (asked of the classifier plugins) and its RFC 3463 code.

The status-code functions are pure and shared by the builtin classifier plugin and the core,
which stores the code of every failed attempt in ``failed_message_send_info``.
"""

from __future__ import annotations

import logging
import re

from postroom.core.contract.protocols import SendFailure
from postroom.core.contract.retry import ErrorCategory
from postroom.core.data.models import MediaProfile
from postroom.core.outbound.connections import NoProvider
from postroom.core.outbound.decision import Failure
from postroom.core.plugin_host import PluginHost

log = logging.getLogger(__name__)

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


def classify(
    plugins: PluginHost, error: SendFailure, profile: MediaProfile | None, recipient: str | None = None
) -> Failure:
    """A failed send as the outbox's rules take it: its reply, its code and its category.

    A reply without a usable profile or protocol plugin is "no such provider" without asking
    the classifier; a classifier that breaks makes the failure an internal error.
    """
    return Failure(
        text=error.text,
        reply_code=error.reply_code,
        enhanced_code=parse_enhanced_status(error.text),
        category=_category(plugins, error, profile),
        recipient=recipient,
        retry_after=error.retry_after,
    )


def _category(plugins: PluginHost, error: SendFailure, profile: MediaProfile | None) -> ErrorCategory:
    if isinstance(error, NoProvider) or profile is None:
        return ErrorCategory.NO_SUCH_PROVIDER
    try:
        category = plugins.classify_send_error(error, profile)
    except Exception:
        log.exception("the send-error classifier failed")
        return ErrorCategory.INTERNAL
    return ErrorCategory(category) if category is not None else ErrorCategory.UNIDENTIFIED


def internal_failure(text: str) -> Failure:
    """A failure postroom itself caused (a bug, missing data): an internal error, never retried blindly."""
    return Failure(
        text=text, reply_code=None, enhanced_code=parse_enhanced_status(text), category=ErrorCategory.INTERNAL
    )
