"""Held inbound mail (``postroom quarantine list|show|export|retry``, ``unrouted list``): quarantined mail
with its reason and "retry", unrouted mail with "route again" per profile, and the raw mail (.eml,
exactly as fetched) for an operator to download.

Retry and re-route are the core's (``core/inbound/quarantine.py``, ``reroute.py``), each in one
transaction with its audit entry: the mail lands on its ticket once, however often it is asked for.
"""

from __future__ import annotations

from typing import Any

from flask import Response as FlaskResponse
from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from postroom.core.contract.errors import UserError
from postroom.core.data import profiles
from postroom.core.data.models import Message, MessageStatus
from postroom.core.inbound import quarantine
from postroom.core.inbound.queries import count_held, held_mail_as_json, held_profile_names
from postroom.core.inbound.reroute import reroute_held_mail
from postroom.web.audit import record
from postroom.web.auth import current_user, operator_required
from postroom.web.operator import bp
from postroom.web.operator.ops_common import CENTER, refused
from postroom.web.paging import pager
from postroom.web.state import postroom_app, transaction

HELD = (MessageStatus.QUARANTINED, MessageStatus.UNROUTED)


def _actor() -> str:
    user = current_user()
    assert user is not None  # @operator_required
    return user.name


def _held(status: MessageStatus) -> dict[str, Any]:
    """One page of the held mail in ``status`` (``?page=``, newest first), read by the database."""
    with transaction() as db:
        pages = pager("page", count_held(db, CENTER, status))
        return {"mails": held_mail_as_json(db, CENTER, status, pages.window), "pages": pages}


@bp.get("/quarantine")
@operator_required
def quarantine_list() -> str:
    return render_template("operator/quarantine.html", **_held(MessageStatus.QUARANTINED))


@bp.get("/quarantine/<int:message_id>")
@operator_required
def quarantine_show(message_id: int) -> str | tuple[str, int]:
    try:
        with transaction() as db:
            document = quarantine.show(db, quarantine.quarantined(db, CENTER, message_id))
    except UserError as error:
        return refused(error, "operator/quarantine.html", **_held(MessageStatus.QUARANTINED))
    return render_template("operator/quarantine_show.html", mail=document)


def _retry(ids: list[int]) -> list[quarantine.RetryResult]:
    """Each mail in a transaction of its own (its signals follow its commit), as the CLI's retry."""
    app = postroom_app()
    results = []
    for pk in ids:
        with transaction() as db:
            result = quarantine.retry(db, app.plugins, quarantine.quarantined(db, CENTER, pk))
            record(db, _actor(), "quarantine.retry", str(pk), result.as_json())
            results.append(result)
    return results


def _said(result: quarantine.RetryResult) -> str:
    where = f" on ticket {result.ticket_id}" if result.ticket_id else ""
    return f"Message {result.message_pk}: {result.status}{where}" + (
        f" ({result.reason})" if result.reason else ""
    )


@bp.post("/quarantine/retry")
@operator_required
def quarantine_retry() -> Response | tuple[str, int]:
    """Retry one mail (``message_id`` in the form) or, with ``all``, every quarantined mail."""
    try:
        if request.form.get("all") == "yes":
            with transaction() as db:
                ids = quarantine.quarantined_ids(db, CENTER)
        else:
            ids = [int(request.form.get("message_id", "0") or 0)]
        results = _retry(ids)
    except (UserError, ValueError) as error:
        return refused(
            error if isinstance(error, UserError) else UserError("Give a message id."),
            "operator/quarantine.html",
            **_held(MessageStatus.QUARANTINED),
        )
    if not results:
        flash("Nothing in quarantine.", "info")
    for result in results:
        flash(_said(result), "error" if result.status == MessageStatus.QUARANTINED else "info")
    return redirect(url_for("operator.quarantine_list"))


def _unrouted_context() -> dict[str, Any]:
    with transaction() as db:
        names = held_profile_names(db, CENTER, MessageStatus.UNROUTED)
    return {**_held(MessageStatus.UNROUTED), "profile_names": names}


@bp.get("/unrouted")
@operator_required
def unrouted_list() -> str:
    return render_template("operator/unrouted.html", **_unrouted_context())


@bp.post("/unrouted/reroute")
@operator_required
def unrouted_reroute() -> Response | tuple[str, int]:
    """Route a profile's held mail again (as a rule change does): those a rule now matches land on tickets."""
    name = request.form.get("profile", "")
    try:
        with transaction() as db:
            routed = reroute_held_mail(db, postroom_app().plugins, profiles.get_profile(db, name, CENTER))
            record(db, _actor(), "unrouted.reroute", name, {"routed": routed})
    except UserError as error:
        return refused(error, "operator/unrouted.html", **_unrouted_context())
    flash(f"Routed {routed} held mail(s) of profile {name!r}.", "info")
    return redirect(url_for("operator.unrouted_list"))


@bp.get("/held/<int:message_id>.eml")
@operator_required
def held_raw(message_id: int) -> FlaskResponse:
    """The raw mail, exactly as fetched, of a quarantined or unrouted mail (``quarantine export``)."""
    with transaction() as db:
        message = db.get(Message, message_id)
        if message is None or message.contact_center_id != CENTER or message.status not in HELD:
            abort(404)
        raw = quarantine.raw_bytes(db, message)
    return FlaskResponse(
        raw,
        mimetype="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{message_id}.eml"'},
    )
