"""Asking every bounce reader about a mail, and merging what they say into one report.

Readers overlap on purpose (the standard report, flufl.bounce's detectors, the plain-text families):
for each address the most informative verdict wins, one with a status code over one without, so a
reader that sees more never loses to one that sees less. Hard or soft follows the status code; where
no reader found one, a reader's own verdict (flufl.bounce's permanent) counts before the text. A bounce forwarded inside another mail
(attached as ``message/rfc822``, or quoted below "Forwarded message") is read by asking the readers
again about the inner mail, when the outer one names nobody.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.message import Message

from postroom.core.contract.bounces import BounceReport, FailedRecipient
from postroom.core.contract.mail import ParsedMail
from postroom.core.mail.bounces.classify import completed
from postroom.core.mail.bounces.ids import compat_message, looks_like_bounce, original_message_ids
from postroom.core.mail.parse import MailParseError, parse_mail

#: Asks every reader about one mail: (plugin name, report) for each that answered.
Ask = Callable[[ParsedMail], list[tuple[str, BounceReport]]]

_FORWARD_RE = re.compile(
    r"^[ \t>]*(?:-+ ?(?:Forwarded message|Original Message|Weitergeleitete Nachricht|Message transféré) ?-+"
    r"|Begin forwarded message:)[ \t]*$",
    re.MULTILINE | re.IGNORECASE,
)
_MAX_DEPTH = 2
#: Recipients are ordered by where they first appear in this much of the mail (a bounce's report is near the top).
_ORDER_WINDOW = 256 * 1024


@dataclass
class BounceReading:
    """Each reader's verdict and the merged report (None: no reader took the mail for a bounce)."""

    verdicts: list[tuple[str, BounceReport]] = field(default_factory=list)
    merged: BounceReport | None = None
    #: "message/rfc822" or "quoted text" when the report came from a bounce forwarded inside the mail.
    forwarded: str | None = None

    @property
    def recipients(self) -> list[FailedRecipient]:
        return self.merged.recipients if self.merged else []


def _score(recipient: FailedRecipient) -> tuple[bool, bool, bool, int]:
    status = recipient.status or ""
    return (bool(status) and not status.endswith(".0.0"), bool(status), recipient.reply_code is not None,
            len(recipient.diagnostic))


def merge(verdicts: list[tuple[str, BounceReport]], parsed: ParsedMail) -> BounceReport | None:
    """One report from every reader's: each address once (its best verdict), in order of appearance."""
    if not verdicts:
        return None
    best: dict[str, FailedRecipient] = {}
    #: A reader's own hard/soft verdict (flufl.bounce's permanent), used when no status code was found.
    stated: dict[str, bool] = {}
    for _, report in verdicts:
        for raw_recipient in report.recipients:
            recipient = completed(raw_recipient)
            if raw_recipient.hard is not None:
                stated.setdefault(recipient.address, raw_recipient.hard)
            if "@" not in recipient.address:
                continue
            known = best.get(recipient.address)
            if known is None or _score(recipient) > _score(known):
                best[recipient.address] = recipient
    for address, recipient in best.items():
        if recipient.status is None and address in stated:
            best[address] = replace(recipient, hard=stated[address])
    text = parsed.raw[:_ORDER_WINDOW].decode("utf-8", "replace").lower()
    ordered = sorted(best.values(), key=lambda r: (text.find(r.address) % (len(text) + 1), r.address))
    with_recipients = [report for _, report in verdicts if report.recipients] or [r for _, r in verdicts]
    ids = [i for _, report in verdicts for i in report.original_message_ids]
    ids.extend(original_message_ids(parsed))
    return BounceReport(
        format="+".join(dict.fromkeys(report.format for report in with_recipients)),
        recipients=ordered,
        original_message_ids=list(dict.fromkeys(i.strip("<>") for i in ids if i)),
        reporting_server=next((r.reporting_server for r in with_recipients if r.reporting_server), None),
    )


def _inner_mails(parsed: ParsedMail) -> list[tuple[str, bytes]]:
    inner: list[tuple[str, bytes]] = []
    for part in compat_message(parsed.raw).walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                inner.append(("message/rfc822", payload[0].as_bytes()))
    text = parsed.text or ""
    match = _FORWARD_RE.search(text)
    if match:
        quoted = text[match.end():].lstrip("\r\n")
        lines = [re.sub(r"^> ?", "", line) for line in quoted.splitlines()]
        inner.append(("quoted text", "\n".join(lines).encode("utf-8")))
    return inner


def read_bounce(parsed: ParsedMail, ask: Ask, depth: int = 0) -> BounceReading:
    """What the readers make of ``parsed``: every verdict and the merged report."""
    verdicts = ask(parsed)
    reading = BounceReading(verdicts=verdicts, merged=merge(verdicts, parsed))
    if reading.recipients or depth >= _MAX_DEPTH or not looks_like_bounce(parsed):
        return reading
    for how, raw in _inner_mails(parsed):
        try:
            inner = parse_mail(raw)
        except MailParseError:
            continue
        found = read_bounce(inner, ask, depth + 1)
        if found.recipients and found.merged is not None:
            outer = reading.merged.original_message_ids if reading.merged else []
            ids = [*found.merged.original_message_ids, *(i for i in outer if i != inner.message_id)]
            found.merged.original_message_ids = list(dict.fromkeys(ids))
            found.forwarded = found.forwarded or how
            found.verdicts = [*verdicts, *((f"{name} (forwarded)", r) for name, r in found.verdicts)]
            return found
    return reading
