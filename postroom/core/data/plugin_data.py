"""Plugins' own indexed values on tickets (the ``ticket_attribute`` table), and finding a ticket by one.

The contract is :class:`postroom.core.contract.plugin_data.TicketAttributes`; plugin authors
import these functions from ``postroom``. Every function works in the caller's session and
transaction (the fetch's, for a resolver), so an attribute is committed with the mail that set it
and rolled back with it. ``docs/plugins/resolvers.md`` shows them in use.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.contract.plugin_data import MAX_NAME_LENGTH, MAX_PLUGIN_LENGTH, MAX_VALUE_LENGTH
from postroom.core.data.models import Ticket, TicketAttribute, TicketState, utcnow
from postroom.core.data.tickets import follow_merges

#: How many tickets carrying one value are looked at (newest first) for an open one.
_CANDIDATES = 20


def _check(plugin: str, name: str, value: str | None = None) -> None:
    """A plugin's mistake (an empty or overlong key or value) is said in one sentence, never truncated."""
    for label, text, limit in (
        ("plugin", plugin, MAX_PLUGIN_LENGTH),
        ("attribute name", name, MAX_NAME_LENGTH),
    ):
        if not isinstance(text, str) or not text or len(text) > limit:
            raise ValueError(f"A ticket attribute's {label} must be 1 to {limit} characters, not {text!r}.")
    if value is not None and (not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH):
        raise ValueError(f"A ticket attribute's value must be text of at most {MAX_VALUE_LENGTH} characters.")


def _row(session: Session, ticket_id: int, plugin: str, name: str) -> TicketAttribute | None:
    return session.scalar(
        select(TicketAttribute).where(
            TicketAttribute.ticket_id == ticket_id,
            TicketAttribute.plugin == plugin,
            TicketAttribute.name == name,
        )
    )


def set_ticket_attribute(session: Session, ticket: Ticket, plugin: str, name: str, value: str) -> None:
    """Store ``value`` as ``plugin``'s attribute ``name`` on ``ticket``, replacing an earlier value."""
    _check(plugin, name, value)
    if ticket.id is None:
        session.flush()  # a ticket created in this transaction gets its id
    row = _row(session, ticket.id, plugin, name)
    if row is None:
        session.add(TicketAttribute(ticket_id=ticket.id, plugin=plugin, name=name, value=value))
    else:
        row.value, row.updated_at = value, utcnow()
    session.flush()


def delete_ticket_attribute(session: Session, ticket: Ticket, plugin: str, name: str) -> bool:
    """Remove ``plugin``'s attribute ``name`` from ``ticket``; False if it had none."""
    _check(plugin, name)
    row = _row(session, ticket.id, plugin, name)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def get_ticket_attribute(session: Session, ticket: Ticket, plugin: str, name: str) -> str | None:
    """The value of ``plugin``'s attribute ``name`` on ``ticket``, or None."""
    _check(plugin, name)
    row = _row(session, ticket.id, plugin, name)
    return row.value if row is not None else None


def ticket_attributes(session: Session, ticket: Ticket, plugin: str) -> dict[str, str]:
    """Every attribute ``plugin`` keeps on ``ticket``, by name."""
    rows = session.execute(
        select(TicketAttribute.name, TicketAttribute.value)
        .where(TicketAttribute.ticket_id == ticket.id, TicketAttribute.plugin == plugin)
        .order_by(TicketAttribute.name)
    )
    return {name: value for name, value in rows}


def find_open_ticket_by_attribute(
    session: Session,
    plugin: str,
    name: str,
    value: str,
    *,
    contact_center_id: int,
    campaign_id: int | None = None,
) -> Ticket | None:
    """The most recently active open ticket of the contact centre (and campaign) carrying the value.

    Uses the (plugin, name, value) index. A ticket that was merged counts as the ticket it was
    merged into, so a value set before a merge still finds the conversation.
    """
    _check(plugin, name, value)
    candidates = session.scalars(
        select(Ticket)
        .join(TicketAttribute, TicketAttribute.ticket_id == Ticket.id)
        .where(
            TicketAttribute.plugin == plugin,
            TicketAttribute.name == name,
            TicketAttribute.value == value,
            Ticket.contact_center_id == contact_center_id,
        )
        .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
        .limit(_CANDIDATES)
    )
    for candidate in candidates:
        ticket = follow_merges(session, candidate)
        if ticket.state == TicketState.OPEN and (campaign_id is None or ticket.campaign_id == campaign_id):
            return ticket
    return None


class BoundTicketAttributes:
    """One plugin's attributes in one session, contact centre and (optionally) campaign.

    What :meth:`postroom.ResolverContext.attributes` returns; implements
    :class:`postroom.core.contract.plugin_data.TicketAttributes`.
    """

    def __init__(
        self, session: Session, plugin: str, contact_center_id: int, campaign_id: int | None
    ) -> None:
        _check(plugin, "-")
        self.session = session
        self.plugin = plugin
        self.contact_center_id = contact_center_id
        self.campaign_id = campaign_id

    def get(self, ticket: Ticket, name: str) -> str | None:
        return get_ticket_attribute(self.session, ticket, self.plugin, name)

    def set(self, ticket: Ticket, name: str, value: str) -> None:
        set_ticket_attribute(self.session, ticket, self.plugin, name, value)

    def all(self, ticket: Ticket) -> dict[str, str]:
        return ticket_attributes(self.session, ticket, self.plugin)

    def find_open_ticket(self, name: str, value: str) -> Ticket | None:
        return find_open_ticket_by_attribute(
            self.session,
            self.plugin,
            name,
            value,
            contact_center_id=self.contact_center_id,
            campaign_id=self.campaign_id,
        )
