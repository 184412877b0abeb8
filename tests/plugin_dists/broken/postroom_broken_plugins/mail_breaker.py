"""A plugin that breaks on some mails: its inbound filter raises for a subject holding ``[break-plugin]``.

Every other mail passes untouched, so the rest of the suite does not notice it.
"""

from __future__ import annotations

from postroom import InboundVerdict, ParsedMail, hookimpl
from postroom.core.data.models import MediaProfile

MARKER = "[break-plugin]"


@hookimpl
def postroom_inbound_filter(message: ParsedMail, profile: MediaProfile) -> InboundVerdict | None:
    if MARKER in (message.subject or ""):
        raise RuntimeError("mail-breaker choked on this subject")
    return None
