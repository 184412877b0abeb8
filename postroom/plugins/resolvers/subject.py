"""Subject-based resolvers: one open ticket per normalised subject (and customer, and profile)."""

from __future__ import annotations

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.data.models import Ticket
from postroom.core.data.tickets import latest_open_ticket_for_subject


class SubjectResolver(ResolverPlugin):
    """Attach the mail to the open ticket of the same normalised subject, whoever wrote it."""

    NAME = "subject"
    LABEL = "Single ticket of same subject"

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        return latest_open_ticket_for_subject(
            context.session, context.campaign_id, context.normalised_subject
        )


class SubjectCustomerResolver(ResolverPlugin):
    """Same normalised subject and same customer."""

    NAME = "subject-customer"
    LABEL = "Single ticket of same subject from same customer"
    CUSTOMER_BASED = True

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        if context.customer is None:
            return None
        return latest_open_ticket_for_subject(
            context.session, context.campaign_id, context.normalised_subject, customer_id=context.customer.id
        )


class SubjectProfileCustomerResolver(ResolverPlugin):
    """Same normalised subject, same customer and same media profile."""

    NAME = "subject-profile-customer"
    LABEL = "Subject media profile customer interaction resolver"
    CUSTOMER_BASED = True

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        if context.customer is None:
            return None
        return latest_open_ticket_for_subject(
            context.session,
            context.campaign_id,
            context.normalised_subject,
            customer_id=context.customer.id,
            profile_id=context.profile.id,
        )


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    return [SubjectResolver, SubjectCustomerResolver, SubjectProfileCustomerResolver]
