"""The agent's pages (inbox, a ticket's conversation, reply, merge, split, close): every view here is
``@agent_required`` and checks ``can_see_queue`` for each ticket it shows. Page modules register their
routes on :data:`bp` and add their link to :data:`NAV`."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("agent", __name__)

#: The agent's navigation: (endpoint, label), in the order shown.
NAV: list[tuple[str, str]] = [("agent.inbox", "Inbox")]

# Each module registers its routes on bp.
from postroom.web.agent import actions, pages, ticket_pages  # noqa: E402, F401
