"""Which tickets the signed-in account may see, and the directory agent it writes as.

Every agent page loads its tickets through :func:`visible_ticket`, which answers 404 for a ticket that
does not exist and 403 for one of a queue the account does not work, by URL as well as by link.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.contract.errors import NotFoundError
from postroom.core.data import tickets
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import Agent, Ticket
from postroom.web.auth import CurrentUser, can_see_queue, current_user

#: The contact centre whose tickets the console shows (the CLI's default one).
CONTACT_CENTER_ID = DEFAULT_CONTACT_CENTER_ID


def signed_in() -> CurrentUser:
    """The account of this request (the views are ``@agent_required``, so there is one)."""
    user = current_user()
    if user is None:  # pragma: no cover - the decorator redirected already
        abort(403)
    return user


def visible_ticket(session: Session, ticket_id: int) -> Ticket:
    """Ticket ``ticket_id`` if the signed-in account may see it: 404 when there is none, 403 when
    it is of another queue."""
    try:
        ticket = tickets.get_ticket(session, CONTACT_CENTER_ID, ticket_id)
    except NotFoundError:
        abort(404)
    if not can_see_queue(signed_in(), ticket.queue_id):
        abort(403)
    return ticket


def writing_agent(session: Session, user: CurrentUser) -> Agent | None:
    """The directory's agent of the same name as the console account (fills a signature's
    ``{agent_name}``), or None when the directory has no such agent."""
    agent: Agent | None = session.scalar(
        select(Agent).where(Agent.contact_center_id == CONTACT_CENTER_ID, Agent.name == user.name)
    )
    return agent
