"""The operator's pages (media profiles, resolvers, retry, rules, outbox, ...): every view here is
``@operator_required``. Page modules register their routes on :data:`bp` and add their link to :data:`NAV`."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("operator", __name__)

#: The operator's navigation: (endpoint, label), in the order shown. The audit log is the console's own.
NAV: list[tuple[str, str]] = [("operator.profiles", "Profiles"), ("audit.audit_page", "Audit log")]
NAV[-1:-1] = [("operator.rules_list", "Rules"), ("operator.configuration_page", "Configuration")]
NAV[-1:-1] = [("operator.plugins_list", "Plugins"), ("operator.outbox_list", "Outbox")]
NAV[-1:-1] = [("operator.quarantine_list", "Quarantine"), ("operator.unrouted_list", "Unrouted")]
NAV[-1:-1] = [("operator.workers_page", "Workers")]

# Each module registers its routes on bp: pages (the profiles' placeholder), rules_pages, configuration_pages
# (failure mail, profile mapping), plugin_pages, outbox_pages, inbound_pages (quarantine, unrouted), worker_pages.
from postroom.web.operator import (  # noqa: E402, F401
    configuration_pages,
    inbound_pages,
    outbox_pages,
    pages,
    plugin_pages,
    rules_pages,
    worker_pages,
)
