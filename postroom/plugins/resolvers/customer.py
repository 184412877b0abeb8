"""Customer-based resolvers: one open ticket per customer (optionally per customer and source profile)."""

from __future__ import annotations

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.data.models import Ticket
from postroom.core.data.tickets import latest_open_ticket_for_customer


class CustomerResolver(ResolverPlugin):
    """Attach the mail to the customer's open ticket, whichever address or profile it came through."""

    NAME = "customer"
    LABEL = "Single ticket for each customer"
    CUSTOMER_BASED = True

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        if context.customer is None:
            return None
        return latest_open_ticket_for_customer(context.session, context.campaign_id, context.customer.id)


class CustomerSourceProfileResolver(ResolverPlugin):
    """Attach the mail to the customer's open ticket that came in through the same media profile."""

    NAME = "customer-source-profile"
    LABEL = "Single ticket for each customer from same source media profile"
    CUSTOMER_BASED = True

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        if context.customer is None:
            return None
        return latest_open_ticket_for_customer(
            context.session, context.campaign_id, context.customer.id, profile_id=context.profile.id
        )


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    return [CustomerResolver, CustomerSourceProfileResolver]
