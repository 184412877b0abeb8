"""An external bounce reader: the vendor of the (made-up) Quillmail MTA teaches postroom its failure notices.

Quillmail writes one line per failed recipient, no delivery-status part:

    QUILLMAIL NON-DELIVERY v2 (relay quill.example)
    RCPT dead@example.com RESULT 5.1.1 mailbox does not exist
    REF <original-message-id@host>
"""

from __future__ import annotations

import re

from postroom import BounceReport, FailedRecipient, ParsedMail, hookimpl

_HEAD = re.compile(r"^QUILLMAIL NON-DELIVERY v\d+ \(relay (?P<relay>[^)]+)\)", re.MULTILINE)
_LINE = re.compile(r"^RCPT (?P<address>\S+@\S+) RESULT (?P<status>\d\.\d{1,3}\.\d{1,3}) (?P<text>.*)$", re.MULTILINE)
_REF = re.compile(r"^REF <(?P<id>[^>]+)>", re.MULTILINE)


@hookimpl
def postroom_read_bounce(message: ParsedMail) -> BounceReport | None:
    text = message.text or ""
    head = _HEAD.search(text)
    if head is None:
        return None
    return BounceReport(
        format="quillmail",
        recipients=[
            FailedRecipient(address=m["address"], status=m["status"], diagnostic=m["text"]) for m in _LINE.finditer(text)
        ],
        original_message_ids=[m["id"] for m in _REF.finditer(text)],
        reporting_server=head["relay"],
    )
