"""Where a bounce shows the mail that bounced: its Message-ID, in whatever form the server returned it.

A delivery report attaches the original (``message/rfc822``) or its headers (``text/rfc822-headers``);
a plain-text bounce quotes the headers in its body ("----- Unsent message follows -----"), sometimes
indented or behind ``>``; some servers set In-Reply-To. All of these are read, so a bounce of a reply
postroom sent is tied to that reply whatever the format.
"""

from __future__ import annotations

import email
import re
import weakref
from email import policy
from email.message import Message
from functools import lru_cache

from postroom.core.contract.mail import ParsedMail

_MESSAGE_ID_RE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
#: A Message-ID header line quoted in a bounce's text, maybe indented or behind "> ", maybe folded.
_QUOTED_ID_RE = re.compile(r"^[ \t>]*Message-I[Dd]\s*:\s*(?:\r?\n[ \t]+)?<([^<>\s]+@[^<>\s]+)>", re.MULTILINE | re.IGNORECASE)


@lru_cache(maxsize=8)
def compat_message(raw: bytes) -> Message:
    """The mail parsed with compat32 (the legacy API flufl.bounce walks, and which survives broken bodies).

    Cached: every reader asks about the same mail in turn (bytes cache their hash, so a hit is cheap).
    """
    return email.message_from_bytes(raw, policy=policy.compat32)


def _attached_headers(part: Message) -> Message | None:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        return inner if isinstance(inner, Message) else None
    if content_type in ("text/rfc822-headers", "message/rfc822-headers"):
        data = part.get_payload(decode=True) or b""
        return email.message_from_bytes(bytes(data), policy=policy.compat32)
    return None


def original_message_ids(parsed: ParsedMail, text: str = "") -> list[str]:
    """Message-IDs (without brackets) of the mail a bounce returns, in the order found, each once.

    Attached messages and headers first, then Message-ID lines quoted in ``text`` (the bounce's
    text, default ``parsed.text``), then the bounce's own In-Reply-To and References. The
    bounce's own Message-ID is never one of them.
    """
    ids: list[str] = []
    for part in compat_message(parsed.raw).walk():
        headers = _attached_headers(part)
        if headers is not None:
            ids.extend(_MESSAGE_ID_RE.findall(str(headers.get("Message-ID", ""))))
    ids.extend(_QUOTED_ID_RE.findall(text or parsed.text or ""))
    if parsed.in_reply_to:
        ids.extend(_MESSAGE_ID_RE.findall(f"<{parsed.in_reply_to.strip('<>')}>"))
    ids.extend(ref.strip("<>") for ref in parsed.references)
    own = (parsed.message_id or "").strip("<>")
    return [i for i in dict.fromkeys(ids) if i and i != own]


_DAEMON_SENDER = re.compile(r"daemon|postmaster|bounce|mailer|^root@|^nobody@|^mmsc|sysadmin|post_master", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|deliver(y|ed|ing)|returned|failure|failed|fail|rejected|bounce|error|not (be )?sent|"
    r"warning|notif|nondeliver|unzustellbar|non remis|配信|エラー|送信",
    re.IGNORECASE,
)


def looks_like_bounce(parsed: ParsedMail) -> bool:
    """Cheap signs of a machine's failure report: a null or daemon sender, a report type, a telling subject.

    For readers whose full check is costly (flufl.bounce runs some thirty detectors): they skip a
    customer's mail that shows none of these signs. Every reader asks it of every mail, so the
    answer for the mail last asked about (the same object, sender and subject) is kept.
    """
    global _last_answer
    key = (parsed.from_address, parsed.subject)
    last = _last_answer
    if last is not None and last[0]() is parsed and last[1] == key:
        return last[2]
    answer = _looks_like_bounce(parsed)
    _last_answer = (weakref.ref(parsed), key, answer)
    return answer


#: (the mail last asked about, its sender and subject, the answer); a weak reference, so that a
#: big mail is not kept alive by it. Replaced whole, so a thread never reads half of another's.
_last_answer: tuple[weakref.ref[ParsedMail], tuple[str | None, str | None], bool] | None = None


def _looks_like_bounce(parsed: ParsedMail) -> bool:
    if not parsed.from_address or _DAEMON_SENDER.search(parsed.from_address):
        return True
    if (parsed.header("Return-Path") or "").strip() == "<>" or parsed.header("X-Failed-Recipients"):
        return True
    if _main_content_type(parsed) == "multipart/report":
        return True
    return bool(_BOUNCE_SUBJECT.search(parsed.subject or ""))


def _main_content_type(parsed: ParsedMail) -> str:
    """The mail's content type, as ``parsed.headers.get_content_type()`` gives it.

    Every bounce reader asks :func:`looks_like_bounce` of every mail; through ``parsed.headers``
    (policy.default) each ask parses the Content-Type header anew with the header registry, about
    0.08 ms a mail, which made the four asks cost half the mail's own parse. A plain ``type/subtype``
    value is read here directly; anything else (comments, quotes, no value) still goes the long way.
    """
    value = (parsed.header("Content-Type") or "").split(";", 1)[0].strip()
    if _PLAIN_TYPE.fullmatch(value):
        return value.lower()
    return parsed.headers.get_content_type()


_PLAIN_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
