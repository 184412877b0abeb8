"""The operator's pages (media profiles, resolvers, retry, rules, outbox, ...): every view here is
``@operator_required``. Page modules register their routes on :data:`bp` and add their link to :data:`NAV`."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("operator", __name__)

#: The operator's navigation: (endpoint, label), in the order shown. The audit log is the console's own.
NAV: list[tuple[str, str]] = [("operator.profiles", "Profiles"), ("audit.audit_page", "Audit log")]
NAV.append(("operator.retry_policies", "Retry policies"))

from postroom.web.operator import (  # noqa: E402 - after bp and NAV, which the modules use
    oauth_pages,  # noqa: F401
    pages,  # noqa: F401 - registers the routes on bp
    profile_pages,  # noqa: F401
    resolver_pages,  # noqa: F401
    retry_pages,  # noqa: F401
    signature_pages,  # noqa: F401
)
