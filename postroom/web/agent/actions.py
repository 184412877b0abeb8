"""What an agent does to a ticket: reply (with attachments, after a preview if wished), merge, split, close.

Each calls the core function the CLI calls (``postroom ticket reply|merge|split|close``), so a refusal is
the CLI's sentence, shown with status 400. A reply is committed to the outbox (``queue_reply``) before
the response is sent; the worker or ``postroom send`` delivers it. Merges, splits and closes are
recorded in the audit log in the same transaction.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from postroom.core.contract.drafts import OutgoingAttachment
from postroom.core.contract.errors import UserError
from postroom.core.data import tickets
from postroom.core.mail.build import assemble_text
from postroom.core.outbound.compose import prepare_reply, queue_reply
from postroom.web.agent import bp
from postroom.web.agent.access import CONTACT_CENTER_ID, signed_in, visible_ticket, writing_agent
from postroom.web.agent.ticket_pages import render_ticket
from postroom.web.audit import record
from postroom.web.auth import agent_required, can_see_queue
from postroom.web.state import postroom_app, transaction

Page = Response | tuple[str, int]


def _uploaded() -> list[OutgoingAttachment]:
    """The files of the reply form: those carried over from a preview, then those chosen now. The
    type is guessed from the name, as ``postroom ticket reply --attach`` does."""
    files: list[OutgoingAttachment] = []
    names, types, blobs = (request.form.getlist(k) for k in ("carried_name", "carried_type", "carried_data"))
    for name, content_type, blob in zip(names, types, blobs, strict=False):
        try:
            files.append(OutgoingAttachment(name, content_type, base64.b64decode(blob, validate=True)))
        except (binascii.Error, ValueError):
            raise UserError(
                f"The attachment {name!r} carried over from the preview is damaged; add it again."
            ) from None
    for upload in request.files.getlist("attachment"):
        if not upload.filename:
            continue
        name = upload.filename.replace("\\", "/").rpartition("/")[2] or "attachment"
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        files.append(OutgoingAttachment(name, content_type, upload.read()))
    return files


def _carried(files: list[OutgoingAttachment]) -> list[dict[str, Any]]:
    return [
        {
            "name": f.filename,
            "type": f.content_type,
            "size": len(f.data),
            "data": base64.b64encode(f.data).decode(),
        }
        for f in files
    ]


@bp.post("/tickets/<int:ticket_id>/reply")
@agent_required
def reply(ticket_id: int) -> Page:
    """``preview``: the reply as it would go out (subject with prefix and case token, signature, quote,
    recipients), composed by the same path ``postroom ticket reply`` takes; ``send``: queue it."""
    user = signed_in()
    body = request.form.get("body", "")
    files: list[OutgoingAttachment] = []
    try:
        files = _uploaded()
        if request.form.get("action") == "preview":
            with transaction() as db:
                ticket = visible_ticket(db, ticket_id)
                draft, profile, left_out = prepare_reply(
                    db, postroom_app().plugins, ticket, body, agent=writing_agent(db, user), attachments=files
                )
                preview = {
                    "from": f"{draft.from_name} <{draft.from_address}>"
                    if draft.from_name
                    else draft.from_address,
                    "to": draft.to,
                    "cc": draft.cc,
                    "subject": draft.subject,
                    "text": assemble_text(draft),
                    "profile": profile.name,
                    "skipped": [s.sentence for s in left_out],
                }
            return render_ticket(
                ticket_id, reply={"body": body, "files": _carried(files), "preview": preview}
            )
        with transaction() as db:
            visible_ticket(db, ticket_id)
            agent = writing_agent(db, user)
            agent_name = agent.name if agent else None
        queued = queue_reply(
            postroom_app(), CONTACT_CENTER_ID, ticket_id, body, agent_name=agent_name, attachments=files
        )
    except UserError as error:
        flash(str(error), "error")
        return render_ticket(ticket_id, status=400, reply={"body": body, "files": _carried(files)})
    copies = f" (cc {', '.join(queued.cc)})" if queued.cc else ""
    flash(
        f"Queued reply {queued.send_info_id} to {', '.join(queued.to)}{copies} through profile "
        f"{queued.profile_name!r}: {queued.subject}",
        "info",
    )
    for skipped in queued.skipped:
        flash(skipped.sentence, "error")
    return redirect(url_for("agent.ticket", ticket_id=ticket_id))


def _ticket_number(field: str) -> int:
    value = request.form.get(field, "").strip().lstrip("#")
    if not value.isdigit() or len(value) > 18:
        raise UserError("Give the number of a ticket, e.g. 42.")
    return int(value)


@bp.post("/tickets/<int:ticket_id>/merge")
@agent_required
def merge(ticket_id: int) -> Page:
    """Merge this ticket into another the account may see (``postroom ticket merge``)."""
    user = signed_in()
    try:
        target_id = _ticket_number("into")
        with transaction() as db:
            source = visible_ticket(db, ticket_id)
            target = tickets.get_ticket(db, CONTACT_CENTER_ID, target_id)
            if not can_see_queue(user, target.queue_id):
                raise UserError(f"There is no ticket {target_id}.")  # another queue's: not even its existence
            tickets.merge_tickets(db, source, target)
            record(db, user.name, "ticket.merge", str(ticket_id), {"into": target_id})
    except UserError as error:
        flash(str(error), "error")
        return render_ticket(ticket_id, status=400)
    flash(f"Merged ticket {ticket_id} into ticket {target_id}.", "info")
    return redirect(url_for("agent.ticket", ticket_id=target_id))


@bp.post("/tickets/<int:ticket_id>/split")
@agent_required
def split(ticket_id: int) -> Page:
    """Move the ticked messages to a new ticket (``postroom ticket split``)."""
    user = signed_in()
    chosen = [int(v) for v in request.form.getlist("message") if v.isdigit() and len(v) < 19]
    try:
        if not chosen:
            raise UserError("Tick the messages to move to a new ticket first.")
        with transaction() as db:
            new = tickets.split_ticket(db, visible_ticket(db, ticket_id), chosen)
            new_id = new.id
            record(db, user.name, "ticket.split", str(ticket_id), {"messages": chosen, "new_ticket": new_id})
    except UserError as error:
        flash(str(error), "error")
        return render_ticket(ticket_id, status=400)
    flash(f"Split {len(chosen)} message(s) of ticket {ticket_id} into new ticket {new_id}.", "info")
    return redirect(url_for("agent.ticket", ticket_id=new_id))


@bp.post("/tickets/<int:ticket_id>/close")
@agent_required
def close(ticket_id: int) -> Page:
    """Close the ticket; later mail of the customer opens a new one (``postroom ticket close``)."""
    user = signed_in()
    try:
        with transaction() as db:
            tickets.close_ticket(db, visible_ticket(db, ticket_id))
            record(db, user.name, "ticket.close", str(ticket_id), {})
    except UserError as error:
        flash(str(error), "error")
        return render_ticket(ticket_id, status=400)
    flash(f"Closed ticket {ticket_id}.", "info")
    return redirect(url_for("agent.ticket", ticket_id=ticket_id))
