"""The operator's pages (media profiles, resolvers, retry, rules, outbox, ...): every view here is
``@operator_required``. Page modules register their routes on :data:`bp` and add their link to :data:`NAV`."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("operator", __name__)

#: The operator's navigation: (endpoint, label), in the order shown. The audit log is the console's own.
NAV: list[tuple[str, str]] = [("operator.profiles", "Profiles"), ("audit.audit_page", "Audit log")]

from postroom.web.operator import pages  # noqa: E402, F401 - registers the routes on bp
