"""The outbox (``postroom outbox list``, ``failures list``, ``send``, ``outbox retry-now|cancel``):
outgoing replies and their failed attempts, filtered by state, profile, error category and date; one
reply's detail with its attempts; and the CLI's actions as POST forms.

The lists are the CLI's documents (``core/outbound/queries.py``), filtered and paged by the database
(``OutboxFilter``, ``Window``); the filters only choose rows, they check nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from postroom.core.contract.errors import UserError
from postroom.core.contract.retry import ErrorCategory
from postroom.core.data import profiles
from postroom.core.data.models import (
    MediaProfile,
    MessageRaw,
    SendState,
    SMessageSendInfo,
)
from postroom.core.outbound import manual, queries
from postroom.core.outbound.outbox import Outbox
from postroom.web.audit import record
from postroom.web.auth import current_user, operator_required
from postroom.web.operator import bp
from postroom.web.operator.ops_common import CENTER, refused
from postroom.web.paging import pager
from postroom.web.state import postroom_app, transaction

FILTERS = ("state", "profile", "category", "since", "until")


def _actor() -> str:
    user = current_user()
    assert user is not None  # @operator_required
    return user.name


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"The {field} date must be YYYY-MM-DD, not {value!r}.") from None


def _span(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """The days ``since`` .. ``until`` (UTC, inclusive) as the times the queries compare with."""
    start = datetime.combine(since, time(), UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time(), UTC) if until else None
    return start, end


def _filtered(chosen: dict[str, str]) -> dict[str, Any]:
    """One page of the replies and of the failed attempts the filters choose (the database filters and
    pages them), with what the filter form offers."""
    since, until = _span(_day(chosen["since"], "from"), _day(chosen["until"], "until"))
    where = queries.OutboxFilter(
        profile=chosen["profile"] or None, category=chosen["category"] or None, since=since, until=until
    )
    states = [chosen["state"]] if chosen["state"] else []
    with transaction() as db:
        reply_pages = pager("page", queries.count_outbox(db, CENTER, states, where))
        failure_pages = pager("failures_page", queries.count_failures(db, CENTER, states, where))
        replies = queries.outbox_as_json(db, CENTER, states, chosen=where, window=reply_pages.window)
        failures = queries.failures_as_json(db, CENTER, states=states, chosen=where, window=failure_pages.window)
        profile_of = {
            row.id: row.name
            for row in db.execute(
                select(SMessageSendInfo.id, MediaProfile.name)
                .join(MediaProfile, MediaProfile.id == SMessageSendInfo.media_profile_id)
                .where(SMessageSendInfo.id.in_({f["outbox_id"] for f in failures}))
            )
        }
        profile_names = [p.name for p in profiles.live_profiles(db, CENTER)]
        categories = sorted(
            {c.value for c in ErrorCategory}
            | set(db.scalars(queries.failure_categories(CENTER)))
        )
    for failure in failures:
        failure["profile"] = profile_of.get(failure["outbox_id"])
    return {
        "replies": replies,
        "failures": failures,
        "reply_pages": reply_pages,
        "failure_pages": failure_pages,
        "states": [s.value for s in SendState],
        "categories": categories,
        "profile_names": profile_names,
        "chosen": chosen,
    }


@bp.get("/outbox")
@operator_required
def outbox_list() -> str | tuple[str, int]:
    chosen = {name: request.args.get(name, "").strip() for name in FILTERS}
    try:
        context = _filtered(chosen)
    except UserError as error:
        return refused(error, "operator/outbox.html", **_filtered(dict.fromkeys(FILTERS, "")))
    return render_template("operator/outbox.html", **context)


@bp.get("/outbox/<int:outbox_id>")
@operator_required
def outbox_detail(outbox_id: int) -> str:
    with transaction() as db:
        found = queries.outbox_as_json(db, CENTER, outbox_id=outbox_id)
        if not found:
            abort(404)
        failures = queries.failures_as_json(db, CENTER, outbox_id)
        row = db.get(SMessageSendInfo, outbox_id)
        assert row is not None
        raw = db.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == row.message_pk))
    headers = bytes(raw or b"").replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    waiting = found[0]["state"] in manual.WAITING
    return render_template(
        "operator/outbox_detail.html", reply=found[0], failures=failures, headers=headers, waiting=waiting
    )


def _act(outbox_id: int, action: str, done: str, change: Any) -> Response:
    try:
        with transaction() as db:
            change(db, CENTER, outbox_id)
            record(db, _actor(), action, str(outbox_id), {})
    except UserError as error:
        flash(str(error), "error")
    else:
        flash(done, "info")
    return redirect(url_for("operator.outbox_detail", outbox_id=outbox_id))


@bp.post("/outbox/<int:outbox_id>/retry-now")
@operator_required
def outbox_retry_now(outbox_id: int) -> Response:
    done = f"Reply {outbox_id} is due now: the next send run tries it."
    return _act(outbox_id, "outbox.retry-now", done, manual.retry_now)


@bp.post("/outbox/<int:outbox_id>/cancel")
@operator_required
def outbox_cancel(outbox_id: int) -> Response:
    return _act(outbox_id, "outbox.cancel", f"Reply {outbox_id} is cancelled.", manual.cancel)


@bp.post("/outbox/send")
@operator_required
def outbox_send() -> Response:
    """``postroom send``: every due reply once, in this request (the worker does the same on its cycle)."""
    report = Outbox(postroom_app()).send_due()
    with transaction() as db:
        record(db, _actor(), "outbox.send", "outbox", report.as_json())
    flash(
        f"Sent {report.sent}, retry scheduled {report.retry_scheduled}, failed {report.failed}"
        + (f" ({report.partial} partly delivered)" if report.partial else "")
        + (f"; {report.copy_errors} sent copies could not be stored" if report.copy_errors else "")
        + ".",
        "info",
    )
    return redirect(url_for("operator.outbox_list"))
