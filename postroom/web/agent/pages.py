"""The inbox: the tickets of the account's queues (an operator's: every queue), newest activity first,
unread marked, searched by customer, subject or case id, in pages."""

from __future__ import annotations

from flask import render_template, request

from postroom.core.data import inbox as inbox_data
from postroom.core.data.models import TicketState
from postroom.web.agent import bp
from postroom.web.agent.access import CONTACT_CENTER_ID, signed_in
from postroom.web.auth import agent_required
from postroom.web.state import transaction

#: The state filter's choices: the value in the URL and the ticket states it shows.
STATES: dict[str, tuple[str, ...]] = {
    "open": (TicketState.OPEN,),
    "closed": (TicketState.CLOSED,),
    "merged": (TicketState.MERGED,),
    "all": (),
}


@bp.get("/inbox")
@agent_required
def inbox() -> str:
    user = signed_in()
    text = request.args.get("q", "").strip()[:200]
    state = request.args.get("state", "open")
    if state not in STATES:
        state = "open"
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and len(page) < 9 else 1
    with transaction() as db:
        found = inbox_data.search_tickets(
            db,
            CONTACT_CENTER_ID,
            queue_ids=None if user.is_operator else user.queue_ids,
            reader_id=user.id,
            text=text,
            states=STATES[state],
            page=number,
        )
    return render_template("agent/inbox.html", found=found, q=text, state=state, states=list(STATES))
