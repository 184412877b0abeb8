"""The observer resolver: a colleague Cc'd on a customer's mail writes about the same subject."""

from __future__ import annotations

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.data.models import Ticket
from postroom.core.data.tickets import latest_open_ticket_observed_by


class ObserverSubjectResolver(ResolverPlugin):
    """Attach the mail to the open ticket of the same normalised subject on which the sender was
    in Cc of a mail from the ticket's customer."""

    NAME = "observer-subject"
    LABEL = "Single ticket with same subject from observer"

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        return latest_open_ticket_observed_by(
            context.session,
            context.campaign_id,
            context.normalised_subject,
            context.message.from_address or "",
        )


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    return [ObserverSubjectResolver]
