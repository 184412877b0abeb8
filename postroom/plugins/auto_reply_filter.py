"""Loop protection: marks auto-replies and mail from postroom's own profiles so nothing answers them.

Recognised (RFC 3834 and the de-facto headers of Exchange, Gmail and list servers):
``Auto-Submitted`` other than ``no``, ``X-Autoreply``/``X-Autorespond``, ``Precedence: auto_reply|bulk|junk``,
``X-Auto-Response-Suppress`` and ``X-Postroom-Loop`` (set on everything postroom sends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import object_session

from postroom import hookimpl
from postroom.core.contract.routing import InboundVerdict
from postroom.core.data.models import MediaProfile

if TYPE_CHECKING:
    from postroom.core.contract.mail import ParsedMail

_AUTO_PRECEDENCE = {"auto_reply", "bulk", "junk", "list"}


def auto_reply_reason(message: ParsedMail) -> str | None:
    """Why this mail counts as automatic, or None."""
    auto_submitted = (message.header("Auto-Submitted") or "").strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto_submitted}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "X-Postroom-Loop"):
        if message.header(header):
            return f"{header} present"
    precedence = (message.header("Precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    return None


def _own_addresses(profile: MediaProfile) -> set[str]:
    """postroom's own addresses in the profile's centre (see ``compose.own_addresses``), read once per session."""
    from postroom.core.outbound.compose import own_addresses

    session = object_session(profile)
    if session is None:
        return {a.lower() for a in (profile.send_from_address, profile.reply_to_address) if a}
    key = ("postroom.own_addresses", profile.contact_center_id)
    if key not in session.info:
        session.info[key] = own_addresses(session, profile.contact_center_id)
    cached: set[str] = session.info[key]
    return cached


@hookimpl
def postroom_inbound_filter(message: ParsedMail, profile: MediaProfile) -> InboundVerdict | None:
    reason = auto_reply_reason(message)
    if reason is not None:
        return InboundVerdict(tags=["auto-reply"], auto_reply=True, reason=reason)
    if message.from_address and message.from_address in _own_addresses(profile):
        return InboundVerdict(
            tags=["own-profile"], auto_reply=True, reason="sent by one of postroom's own profiles"
        )
    return None
