"""flufl.bounce (Mailman's bounce detectors) as a bounce reader.

It knows dozens of non-standard MTA formats; recognising bounces by hand is a long tail we do not
want to own, so the plain-text families (text.py) only add what it misses. It says permanent or
temporary and nothing more: the status code and reason come from the other readers when they see
the same address.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable

from postroom.core.contract.bounces import BounceReport, FailedRecipient
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.mail import ParsedMail
from postroom.core.mail.bounces import compat_message, looks_like_bounce

_ADDRESS_RE = re.compile(r"[\w.+%-]+@[\w.-]+\.[A-Za-z]{2,}")
#: flufl.bounce tries some fifty patterns on every line of every part: it is shown the head of the mail
#: only, where the report is (its own 98 permanent bounces read the same from their first 300 lines;
#: AOL puts its report after a 1200-line text part). Worst case about half a second.
_HEAD_BYTES, _HEAD_LINES = 256 * 1024, 4000

# flufl.bounce and its thirty detectors are imported on the first mail that looks like a bounce,
# not with the plugin (a worker that never sees one need not hold them, issue 18). Found here, so
# that a missing flufl.bounce still leaves the plugin out as failed at start, not at that mail.
if importlib.util.find_spec("flufl.bounce") is None:
    raise ImportError("flufl.bounce is not installed")


def _head(raw: bytes) -> bytes:
    return b"\n".join(raw[:_HEAD_BYTES].split(b"\n", _HEAD_LINES)[:_HEAD_LINES])


def _addresses(found: Iterable[object] | None) -> list[str]:
    cleaned = []
    for item in found or ():
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        match = _ADDRESS_RE.search(text)
        if match:
            cleaned.append(match.group(0).lower())
    return cleaned


@hookimpl
def postroom_read_bounce(message: ParsedMail) -> BounceReport | None:
    if not looks_like_bounce(message):
        return None  # some thirty detectors are too dear for every customer's mail
    from flufl.bounce import all_failures

    try:
        _temporary, permanent = all_failures(compat_message(_head(message.raw)))
    except Exception:  # a detector choking on a malformed bounce must not lose the mail
        return None
    # Its temporary failures are delay warnings ("will keep trying"): not a failed delivery at all.
    recipients = [FailedRecipient(address=a, hard=True) for a in _addresses(permanent)]
    return BounceReport(format="flufl.bounce", recipients=recipients) if recipients else None
