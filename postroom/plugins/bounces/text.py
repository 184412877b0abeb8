"""Plain-text bounces: reports with no machine-readable part, read family by family (families.py).

Each family says how its report is recognised and where it starts and ends; reading the report is
the same for all: every address in it that is not the sender's is a failed recipient, and what the
server said about it is the text from where the address appears to where the next one does (or the
whole report, when the reason is written above the list, as MailMarshal does).
"""

from __future__ import annotations

import re

from postroom.core.contract.bounces import BounceReport, FailedRecipient
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.mail import ParsedMail
from postroom.core.mail.bounces import looks_like_bounce, parse_reply_code, parse_status, reason_for
from postroom.core.mail.build import html_to_text
from postroom.plugins.bounces.families import FAMILIES, Family

_ADDRESS_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
#: Lines naming the original's sender or the mail's own headers, never a failed recipient.
_NOT_RECIPIENT_LINE = re.compile(
    r"^[ \t>]*(from|mail from|original sender|sender|sender-mta|reply-to|return-path|envelope sender|"
    r"message-id|in-reply-to|references|received|x-[\w-]+|generating server)\s*:",
    re.IGNORECASE,
)
_DAEMON_RE = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
_MAX_DIAGNOSTIC = 800
#: Bounds on the work a hostile mail can cause: a report is read up to this many characters and mentions.
_MAX_REPORT, _MAX_MENTIONS = 64_000, 200


def _report_text(message: ParsedMail) -> str:
    return message.text or (html_to_text(message.html) if message.html else "")


def _family(message: ParsedMail, text: str) -> Family | None:
    head = message.raw[:8192].decode("latin-1", "replace") + "\n" + text[:8000]
    return next((f for f in FAMILIES if f.signature.search(head)), None)


def _section(family: Family, text: str) -> str:
    if family.start is not None and (start := family.start.search(text)):
        text = text[start.start():]
    if family.end is not None and (end := family.end.search(text)):
        text = text[: end.start()]
    return text


def _recipients(section: str, own: set[str]) -> list[FailedRecipient]:
    section = section[:_MAX_REPORT]
    lines = section.splitlines()
    at: list[tuple[int, str]] = []  # (line index, address) of every recipient mention
    for index, line in enumerate(lines):
        if _NOT_RECIPIENT_LINE.match(line):
            continue
        for address in dict.fromkeys(a.lower().rstrip(".") for a in _ADDRESS_RE.findall(line)):
            if address not in own and not _DAEMON_RE.match(address) and len(at) < _MAX_MENTIONS:
                at.append((index, address))
    recipients = []
    for address in dict.fromkeys(a for _, a in at):
        segments = []
        for position, (index, mentioned) in enumerate(at):
            if mentioned != address:
                continue
            following = (i for i, other in at[position + 1 :] if other != address and i > index)
            segments.append("\n".join(lines[index : next(following, len(lines))]).strip())
        diagnostic = "\n".join(dict.fromkeys(segments))
        if parse_status(diagnostic) is None and parse_reply_code(diagnostic) is None and (
            reason_for(None, diagnostic) == "unknown"
        ):
            diagnostic = section.strip()
        recipients.append(FailedRecipient(address=address, diagnostic=diagnostic[:_MAX_DIAGNOSTIC]))
    return recipients


@hookimpl
def postroom_read_bounce(message: ParsedMail) -> BounceReport | None:
    if not looks_like_bounce(message):
        return None  # a customer's mail: not worth thirteen signature searches
    text = _report_text(message)
    family = _family(message, text) if text else None
    if family is None:
        return None
    own = {a.lower() for a in [message.from_address, *message.to, *message.reply_to] if a}
    recipients = _recipients(_section(family, text), own)
    server = message.from_address.split("@", 1)[1] if message.from_address and "@" in message.from_address else None
    return BounceReport(format=family.name, recipients=recipients, reporting_server=server)
