"""The ticket resolver contract: how a stored, routed mail finds the ticket it belongs to.

A resolver is a class returned from ``postroom_register_resolvers``; a profile lists resolvers
in priority order and the first one that returns a ticket wins (docs/architecture.md, "Resolve").
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from postroom.core.contract.mail import ParsedMail
    from postroom.core.contract.plugin_data import TicketAttributes
    from postroom.core.data.models import Customer, MediaProfile, Message, Ticket


@dataclass
class ResolverContext:
    """What a resolver sees about one inbound mail.

    ``message`` is the parsed mail, ``stored`` its database row (not yet on a ticket),
    ``campaign_id`` the campaign routing chose, ``customer`` the sender's customer account,
    and ``normalised_subject`` the subject with reply prefixes, the profile's subject prefix
    and case token removed (see :func:`postroom.core.mail.subjects.normalise_subject`).
    :meth:`attributes` gives a plugin its own indexed values on tickets (docs/plugins/resolvers.md).
    """

    session: Session
    message: ParsedMail
    stored: Message
    profile: MediaProfile
    campaign_id: int
    customer: Customer | None
    normalised_subject: str
    #: Makes :meth:`attributes`' stores; the core fills it in.
    attribute_store: Callable[[str], TicketAttributes] | None = None
    #: The ticket of the newest stored message among some Message-IDs, answered from the batch's
    #: threads loaded in one query (``data/threads.py``); None: ask ``data.tickets.ticket_of_thread``.
    thread_ticket: Callable[[Sequence[str]], Ticket | None] | None = None

    def attributes(self, plugin: str) -> TicketAttributes:
        """The ticket attributes ``plugin`` keeps (``plugin`` names your plugin, e.g. ``"order-number"``).

        ``find_open_ticket`` only finds open tickets of this mail's campaign, and ``set`` is
        committed with the mail (rolled back with it if the mail is quarantined).
        """
        if self.attribute_store is None:
            raise RuntimeError("this ResolverContext was made without ticket attributes")
        return self.attribute_store(plugin)


class ResolverPlugin(abc.ABC):
    """A ticket resolver. A subclass provides ``NAME``, ``LABEL`` and :meth:`find_ticket`.

    Only tickets of ``context.campaign_id`` that are open are candidates; a resolver that
    finds a merged ticket returns it as is and the core follows ``merged_into``.
    ``postroom.core.data.tickets`` has the indexed queries the builtins use.
    """

    #: Configuration name, as typed in ``--resolver`` (``case-id``).
    NAME: ClassVar[str]
    #: Human label, the seed's wording ("Case ID based resolver").
    LABEL: ClassVar[str] = ""
    #: True for resolvers that group by customer: a bounce for a customer is appended to the
    #: customer's open ticket and escalates it, instead of opening a new escalated ticket.
    CUSTOMER_BASED: ClassVar[bool] = False
    #: True for resolvers that follow threads through ``context.thread_ticket``: for them the core
    #: loads the tickets of a batch's threads up front, in one query.
    THREADED: ClassVar[bool] = False

    @abc.abstractmethod
    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        """Return the open ticket this mail belongs to, or None if this resolver finds none."""

    def ticket_chosen(self, context: ResolverContext, ticket: Ticket) -> None:
        """Called once the mail is on its ticket (found by any resolver, or new), for every resolver
        the profile lists: the place to remember something about the ticket for the next mail
        (``context.attributes(...).set(ticket, ...)``). The default does nothing.
        """
        return None
