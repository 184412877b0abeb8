"""Why a delivery failed, and whether that is final: a reason class from the status code and the text.

The enhanced status code (RFC 3463) is the most reliable witness: its class says permanent (5) or
transient (4), its subject and detail say what failed. Many servers give only ``5.0.0`` or no code
at all, so the text ("User unknown", "mailbox full", a Japanese carrier's sentence) decides then,
and a specific text also sharpens a vague code (``5.7.1`` that says "spam").

Hard means the address, or this mail, will not get through by trying again: an unknown user or
host, a disabled mailbox, a refusal by policy or as spam, a message too big. A full mailbox, an
expired delivery or a network or system error are soft whatever the class (RFC 3463 itself calls
X.2.2 useful "for both permanent and persistent transient errors").
"""

from __future__ import annotations

import re

from postroom.core.contract.bounces import FailedRecipient, Reason

STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
REPLY_CODE_RE = re.compile(r"(?<![\d.#-])([45][0-5]\d)(?=[ -]|$)", re.MULTILINE)

#: (subject, detail) → reason, then subject alone (detail None); RFC 3463 sections 3.1-3.8.
_BY_STATUS: dict[tuple[int, int | None], str] = {
    (1, 1): Reason.UNKNOWN_USER,
    (1, 3): Reason.UNKNOWN_USER,
    (1, 6): Reason.UNKNOWN_USER,
    (1, 10): Reason.UNKNOWN_USER,  # Exchange Online: RESOLVER.ADR.RecipientNotFound
    (1, 2): Reason.UNKNOWN_HOST,
    (1, 8): Reason.POLICY,  # bad sender's system address
    (2, 1): Reason.MAILBOX_DISABLED,
    (2, 2): Reason.MAILBOX_FULL,
    (2, 3): Reason.TOO_BIG,
    (3, 1): Reason.MAILBOX_FULL,
    (3, 4): Reason.TOO_BIG,
    (4, 4): Reason.UNKNOWN_HOST,
    (4, 7): Reason.EXPIRED,
    (7, 1): Reason.POLICY,
    (1, None): Reason.UNKNOWN_USER,
    (2, None): Reason.MAILBOX_DISABLED,
    (3, None): Reason.SYSTEM,
    (4, None): Reason.NETWORK,
    (5, None): Reason.SYSTEM,
    (6, None): Reason.POLICY,
    (7, None): Reason.POLICY,
}

#: Text patterns, most specific first. English as the servers write it, and the Japanese carriers'.
_BY_TEXT: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (Reason.SPAM, r"\bspam|junk mail|blacklist|blocklist|\brbl\b|spamhaus|reputation|content filter"),
        (Reason.MAILBOX_FULL, r"mailbox (is )?full|over ?quota|quota exceeded|exceeded storage|insufficient (disk )?space|mailbox.{0,20}exceed|容量"),
        (Reason.TOO_BIG, r"too (big|large)|size limit|exceeds? (the )?(maximum|message size)|message size"),
        (Reason.UNKNOWN_HOST, r"host (or domain name )?not found|unknown host|no such domain|domain (name )?not found|unrouteable|unroutable|name server|no mx|null mx|host unknown|domain does not exist"),
        (Reason.MAILBOX_DISABLED, r"disabled|suspended|inactive|deactivated|account (has been |is )?(closed|locked|expired)|no longer (active|available)|mailbox unavailable"),
        (Reason.UNKNOWN_USER, r"user unknown|unknown user|no such (user|mailbox|recipient|address)|user (does not|doesn.t) exist|does not exist|doesn.t exist|not found|invalid (user|recipient|mailbox|address)|recipient (address )?rejected|not listed in|mailbox not available|no mailbox|not our customer|address rejected|unknown (local|recipient|address)|no valid recipients|undeliverable address|宛先不明|存在しません|見つからない|ありません"),
        (Reason.EXPIRED, r"expired|timed? ?out|too long|retry time|could not be delivered within|giving up"),
        (Reason.POLICY, r"policy|not (permitted|authori[sz]ed|allowed)|relay(ing)? (access )?denied|rejected|refused|blocked|prohibited|access denied|拒否"),
        (Reason.NETWORK, r"connection (refused|reset|closed|lost)|network|unreachable|could not connect"),
        (Reason.SYSTEM, r"system error|internal error|temporar|try again later|local error"),
    )
)


def parse_status(text: str) -> str | None:
    """The first RFC 3463 status code in ``text`` (``5.1.1``), or None."""
    match = STATUS_RE.search(text)
    return match.group(0) if match else None


def parse_reply_code(text: str) -> int | None:
    """The first SMTP reply code (``550``) in ``text``, or None."""
    match = REPLY_CODE_RE.search(text)
    return int(match.group(1)) if match else None


def reason_from_text(text: str) -> str | None:
    for reason, pattern in _BY_TEXT:
        if pattern.search(text):
            return reason
    return None


def reason_for(status: str | None, text: str) -> str:
    """The reason class: the status code's, unless it is vague (X.0.0, X.7.x) and the text says more."""
    from_text = reason_from_text(text)
    match = STATUS_RE.fullmatch(status or "")
    if match:
        subject, detail = int(match.group(2)), int(match.group(3))
        from_code = _BY_STATUS.get((subject, detail)) or _BY_STATUS.get((subject, None))
        if from_text == Reason.SPAM or subject == 0 or from_code is None:
            return from_text or from_code or Reason.UNKNOWN
        return from_code
    return from_text or Reason.UNKNOWN


def is_hard(status: str | None, reason: str) -> bool:
    """Permanent for this address or mail: a 5.x.x code (or none) and a reason that is not passing."""
    if reason in Reason.SOFT:
        return False
    return not (status or "").startswith("4")


def completed(recipient: FailedRecipient) -> FailedRecipient:
    """The recipient with its status code, reply code, reason class and hard/soft filled in."""
    status = recipient.status or parse_status(recipient.diagnostic)
    reply_code = recipient.reply_code or parse_reply_code(recipient.diagnostic)
    if status is None and reply_code is not None:
        status = f"{reply_code // 100}.0.0"
    reason = recipient.reason or reason_for(status, recipient.diagnostic)
    hard = recipient.hard if recipient.hard is not None else is_hard(status, reason)
    return FailedRecipient(
        address=recipient.address.strip().strip("<>").lower(),
        status=status,
        diagnostic=recipient.diagnostic.strip(),
        reply_code=reply_code,
        reason=reason,
        hard=hard,
    )
