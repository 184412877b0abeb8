"""The audit log for pages: :func:`record` (the core's) and the page that shows the log to operators.

Every page that changes configuration calls ``record(db, current_user().name, ACTION, TARGET, DETAIL)``
in the same transaction as the change (docs/web.md).
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from postroom.core.data.audit import count, recent, record
from postroom.web.auth import operator_required
from postroom.web.paging import pager
from postroom.web.state import transaction

__all__ = ["bp", "record"]

bp = Blueprint("audit", __name__)


@bp.get("/audit")
@operator_required
def audit_page() -> str:
    actor = request.args.get("actor", "").strip() or None
    action = request.args.get("action", "").strip() or None
    with transaction() as db:
        pages = pager("page", count(db, actor=actor, action=action))
        window = pages.window
        entries = [
            {"at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "detail": e.detail}
            for e in recent(db, window.limit, actor=actor, action=action, offset=window.offset)
        ]
    return render_template("audit.html", entries=entries, pages=pages, actor=actor or "", action=action or "")
