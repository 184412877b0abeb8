"""Re-routing held mail: a profile's unrouted mail processed again once a routing rule is added or enabled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.data.models import MediaProfile, Message, MessageRaw, MessageStatus
from postroom.core.data.profiles import get_profile
from postroom.core.inbound.process import MailProcessor
from postroom.core.mail.parse import parse_mail
from postroom.core.plugin_host import PluginHost

if TYPE_CHECKING:
    from postroom.core.app import Postroom


def reroute_held_mail(session: Session, plugins: PluginHost, profile: MediaProfile) -> int:
    """Route again every unrouted mail of a profile within ``session``; returns how many landed on a ticket.

    Each mail is processed in a savepoint of its own: one that breaks a plugin is quarantined alone.
    """
    processor = MailProcessor(session, plugins, profile)
    held = session.execute(
        select(Message, MessageRaw.raw)
        .join(MessageRaw, MessageRaw.message_pk == Message.id)
        .where(Message.media_profile_id == profile.id, Message.status == MessageStatus.UNROUTED)
        .order_by(Message.id)
    ).all()
    routed = 0
    for message, raw in held:
        try:
            parsed = parse_mail(raw)
        except Exception:  # it parsed when it was stored; a parser change must not stop the re-route
            continue
        processor.process(message, parsed)
        routed += message.status == MessageStatus.TICKETED
    return routed


def reroute_held(app: Postroom, profile_name: str, contact_center_id: int) -> int:
    """Route a profile's held (unrouted) mail again and commit; its signals go out after the commit."""
    with app.transaction() as session:
        return reroute_held_mail(session, app.plugins, get_profile(session, profile_name, contact_center_id))
