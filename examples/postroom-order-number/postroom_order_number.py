"""A postroom resolver: a mail naming an order number lands on the open ticket of that order.

The first mail that names an order ("order 123456", "Order #123456", "Bestellung 123456") opens a
ticket as usual (or lands where another resolver puts it); this resolver then keeps the order
number on that ticket as a ticket attribute. The next mail naming the same order, from whoever,
with whatever subject, finds that ticket by the attribute (an indexed look-up, not a search).
"""

from __future__ import annotations

import re

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.data.models import Ticket

#: The key the attributes are kept under: this plugin's name.
PLUGIN = "order-number"
ORDER = re.compile(r"\b(?:order|bestellung)\s*(?:no\.?|number|nr\.?|#)?\s*:?\s*(\d{4,12})\b", re.IGNORECASE)


def order_number(context: ResolverContext) -> str | None:
    """The first order number named in the subject, else in the text body."""
    for text in (context.message.subject, context.message.text or ""):
        match = ORDER.search(text)
        if match:
            return match.group(1)
    return None


class OrderNumberResolver(ResolverPlugin):
    NAME = "order-number"
    LABEL = "Order number: the open ticket of the order the mail names"

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        number = order_number(context)
        if number is None:
            return None
        return context.attributes(PLUGIN).find_open_ticket("order", number)

    def ticket_chosen(self, context: ResolverContext, ticket: Ticket) -> None:
        number = order_number(context)
        attributes = context.attributes(PLUGIN)
        if number is not None and attributes.get(ticket, "order") is None:
            attributes.set(ticket, "order", number)


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    return [OrderNumberResolver]
