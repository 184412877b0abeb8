"""The builtin router: a profile's enabled routing rules, first match by priority wins."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from postroom import hookimpl
from postroom.core.contract.routing import RouteChoice
from postroom.core.data.models import MediaProfile
from postroom.core.data.rules import enabled_rules, rule_matches

if TYPE_CHECKING:
    from postroom.core.contract.mail import ParsedMail


@hookimpl(trylast=True)
def postroom_route_message(
    message: ParsedMail, profile: MediaProfile, session: Session
) -> RouteChoice | None:
    recipients = [*message.to, *message.cc]
    for rule in enabled_rules(session, profile.id):
        if rule_matches(rule, message.from_address, recipients, message.subject):
            return RouteChoice(campaign_id=rule.campaign_id, queue_id=rule.queue_id, rule_id=rule.id)
    return None
