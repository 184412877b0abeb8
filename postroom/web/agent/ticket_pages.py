"""A ticket's conversation: its inbound and outbound mail in order, bounces and auto-replies marked,
each reply's delivery state (a scheduled retry with its time and the server's last answer), and the
attachments to download.

Opening the page marks the ticket read for the account (the inbox's "unread").
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Response, abort, render_template
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.http import dump_options_header

from postroom.core.data import inbox as inbox_data
from postroom.core.data import tickets
from postroom.core.data.models import Message, MessageRaw
from postroom.core.mail.attachments import attachment_data
from postroom.core.outbound import queries
from postroom.web.agent import bp
from postroom.web.agent.access import CONTACT_CENTER_ID, signed_in, visible_ticket
from postroom.web.auth import agent_required
from postroom.web.state import transaction


def conversation(db: Session, ticket_id: int) -> dict[str, Any]:
    """What the ticket page shows: ``ticket_show --json``'s document, each message with its text and,
    for a reply, its outbox row (``outbox list --json``'s) and failed attempts."""
    ticket = visible_ticket(db, ticket_id)
    document = tickets.ticket_as_json(db, ticket, with_messages=True)
    bodies = dict(
        db.execute(select(Message.id, Message.text_body).where(Message.ticket_id == ticket.id)).all()
    )
    outbox = {row["message_id"]: row for row in queries.outbox_as_json(db, CONTACT_CENTER_ID, (), ticket.id)}
    failures: dict[int, list[dict[str, Any]]] = {}
    for failure in queries.failures_as_json(db, CONTACT_CENTER_ID, ticket_id=ticket.id):  # one query, not one a reply
        failures.setdefault(failure["outbox_id"], []).append(failure)
    for message in document["messages"]:
        message["text"] = bodies.get(message["id"]) or ""
        row = outbox.get(message["message_id"]) if message["direction"] == "outbound" else None
        message["outbox"] = row
        message["failures"] = failures.get(row["id"], []) if row else []
    return document


def render_ticket(
    ticket_id: int, *, status: int = 200, reply: dict[str, Any] | None = None
) -> tuple[str, int]:
    """The ticket page (with the reply form filled from ``reply`` when an attempt is shown again)."""
    user = signed_in()
    with transaction() as db:
        document = conversation(db, ticket_id)
        shown = visible_ticket(db, ticket_id).last_activity_at
    _mark_read(user.id, ticket_id, shown)
    return render_template("agent/ticket.html", t=document, reply=reply or {}), status


def _mark_read(user_id: int, ticket_id: int, shown: datetime) -> None:
    try:
        with transaction() as db:
            inbox_data.mark_read(db, user_id, ticket_id, shown)
    except IntegrityError:  # the same account opened it in another tab at the same moment: read either way
        pass


@bp.get("/tickets/<int:ticket_id>")
@agent_required
def ticket(ticket_id: int) -> tuple[str, int]:
    return render_ticket(ticket_id)


@bp.get("/messages/<int:message_id>/attachments/<int:index>")
@agent_required
def attachment(message_id: int, index: int) -> Response:
    """The ``index``-th attachment of a message, as a download, for accounts that may see its ticket."""
    with transaction() as db:
        message = db.get(Message, message_id)
        if message is None or message.ticket_id is None or message.contact_center_id != CONTACT_CENTER_ID:
            abort(404)
        visible_ticket(db, message.ticket_id)
        raw = db.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == message_id))
    found = attachment_data(raw, index) if raw is not None else None
    if found is None:
        abort(404)
    name = "".join(c for c in found.name or "" if c.isprintable()) or f"attachment-{index + 1}"
    response = Response(found.data, mimetype=found.content_type)
    # Always a download, never shown inline: a mail's HTML or SVG must not run as a page of the console.
    response.headers["Content-Disposition"] = disposition(name)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def disposition(name: str) -> str:
    """``attachment`` with the file's name: plain when it is ASCII, else an ASCII stand-in and the
    real name as RFC 6266's ``filename*`` (a header carries only Latin-1, and browsers read UTF-8 there)."""
    if name.isascii():
        return dump_options_header("attachment", {"filename": name})
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode() or "attachment"
    return dump_options_header(
        "attachment", {"filename": plain, "filename*": f"UTF-8''{quote(name, safe='')}"}
    )
