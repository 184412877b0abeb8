"""What a plugin may keep on a ticket: its own named values, indexed, found again by value.

A resolver reaches them through :meth:`postroom.ResolverContext.attributes`; other code (a
command, a signal receiver) calls the functions re-exported from ``postroom``
(``set_ticket_attribute``, ``get_ticket_attribute``, ``ticket_attributes``,
``find_open_ticket_by_attribute``), implemented in ``postroom.core.data.plugin_data``. Values are
kept per plugin: two plugins' ``order`` attributes never meet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from postroom.core.data.models import Ticket

#: The longest plugin name, attribute name and value a ticket attribute holds (the columns' sizes).
MAX_PLUGIN_LENGTH = 64
MAX_NAME_LENGTH = 64
MAX_VALUE_LENGTH = 255


class TicketAttributes(Protocol):
    """One plugin's attributes, bound to a session, its contact centre and (for a resolver) a campaign."""

    def get(self, ticket: Ticket, name: str) -> str | None:
        """The value of ``name`` on ``ticket``, or None."""

    def set(self, ticket: Ticket, name: str, value: str) -> None:
        """Store ``value`` as ``name`` on ``ticket`` (replacing its earlier value); flushed, not committed."""

    def all(self, ticket: Ticket) -> dict[str, str]:
        """Every attribute of this plugin on ``ticket``."""

    def find_open_ticket(self, name: str, value: str) -> Ticket | None:
        """The most recently active open ticket carrying ``name`` = ``value`` (following merges), or None.

        Bound to a resolver's context, only tickets of the mail's campaign are candidates.
        """
