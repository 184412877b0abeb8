"""An agent's inbox: the tickets of some queues, searched and paged, and which of them are unread.

The console's inbox (``postroom.web.agent``) reads tickets through here; the ticket documents are
:func:`postroom.core.data.tickets.ticket_as_json`'s, as ``postroom ticket list --json`` prints them.
"Unread" is per console account: a ticket is unread for an account that has never opened it, or
has not opened it since its last activity (``web_ticket_read``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from postroom.core.data.models import Customer, CustomerEmail, Message, Ticket, WebTicketRead
from postroom.core.data.tickets import ticket_as_json

#: Tickets on one page of the inbox.
PAGE_SIZE = 50


@dataclass(frozen=True)
class InboxPage:
    """One page of an inbox: its tickets (``ticket_as_json`` documents plus ``customer`` and
    ``unread``), how many tickets match in all, and the page's number (from 1)."""

    tickets: list[dict[str, Any]]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _matching(text: str) -> Any:
    """Tickets whose subject, case token, id or customer (name or address) holds ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    by_customer = or_(
        exists().where(Customer.id == Ticket.customer_id, Customer.name.ilike(pattern, escape="\\")),
        exists().where(
            CustomerEmail.customer_id == Ticket.customer_id,
            CustomerEmail.address.ilike(pattern, escape="\\"),
        ),
    )
    conditions = [
        Ticket.subject.ilike(pattern, escape="\\"),
        Ticket.case_token.ilike(pattern, escape="\\"),
        by_customer,
    ]
    number = text.strip().lstrip("#")
    if number.isdigit() and len(number) < 18:
        conditions.append(Ticket.id == int(number))
    return or_(*conditions)


def search_tickets(
    session: Session,
    contact_center_id: int,
    *,
    queue_ids: Collection[int] | None,
    reader_id: int,
    text: str = "",
    states: Sequence[str] = (),
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> InboxPage:
    """The tickets of ``queue_ids`` (every queue when None), newest activity first, matching ``text``
    (see :func:`_matching`) and ``states``; page ``page``, unread marked for account ``reader_id``."""
    query = select(Ticket).where(Ticket.contact_center_id == contact_center_id)
    if queue_ids is not None:
        query = query.where(Ticket.queue_id.in_(list(queue_ids)))
    if states:
        query = query.where(Ticket.state.in_(list(states)))
    if text.strip():
        query = query.where(_matching(text.strip()))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    found = list(
        session.scalars(
            query.order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
    )
    ids = [t.id for t in found]
    counts = dict(
        session.execute(
            select(Message.ticket_id, func.count())
            .where(Message.ticket_id.in_(ids))
            .group_by(Message.ticket_id)
        ).all()
    )
    read = dict(
        session.execute(
            select(WebTicketRead.ticket_id, WebTicketRead.seen_activity_at).where(
                WebTicketRead.web_user_id == reader_id, WebTicketRead.ticket_id.in_(ids)
            )
        ).all()
    )
    names = dict(
        session.execute(
            select(Customer.id, Customer.name).where(
                Customer.id.in_([t.customer_id for t in found if t.customer_id is not None])
            )
        ).all()
    )
    documents = []
    for ticket in found:
        document = ticket_as_json(session, ticket, message_count=counts.get(ticket.id, 0))
        document["customer"] = names.get(ticket.customer_id) if ticket.customer_id else None
        opened = read.get(ticket.id)
        document["unread"] = opened is None or opened < ticket.last_activity_at
        documents.append(document)
    return InboxPage(documents, total, page, page_size)


def mark_read(session: Session, reader_id: int, ticket_id: int, shown: datetime) -> None:
    """Remember that account ``reader_id`` has seen ticket ``ticket_id`` as it was at ``shown`` (its
    last activity when the page was read): mail that came in after that keeps it unread."""
    row = session.get(WebTicketRead, (reader_id, ticket_id))
    if row is None:
        session.add(WebTicketRead(web_user_id=reader_id, ticket_id=ticket_id, seen_activity_at=shown))
    elif row.seen_activity_at < shown:
        row.seen_activity_at = shown
