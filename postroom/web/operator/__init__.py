"""The operator's pages (media profiles, resolvers, retry, rules, outbox, ...): every view here is
``@operator_required``. Page modules register their routes on :data:`bp` and add their link to :data:`NAV`."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("operator", __name__)

#: The operator's navigation: (endpoint, label), in the order shown. The audit log is the console's own.
NAV: list[tuple[str, str]] = [
    ("operator.profiles", "Profiles"),
    ("operator.retry_policies", "Retry policies"),
    ("operator.rules_list", "Rules"),
    ("operator.configuration_page", "Configuration"),
    ("operator.plugins_list", "Plugins"),
    ("operator.outbox_list", "Outbox"),
    ("operator.quarantine_list", "Quarantine"),
    ("operator.unrouted_list", "Unrouted"),
    ("operator.workers_page", "Workers"),
    ("audit.audit_page", "Audit log"),
]

# Each module registers its routes on bp: the media profiles (profile_pages, resolver_pages, retry_pages,
# signature_pages, oauth_pages), rules_pages, configuration_pages (failure mail, profile mapping),
# plugin_pages, outbox_pages, inbound_pages (quarantine, unrouted), worker_pages; pages is the room's note.
from postroom.web.operator import (  # noqa: E402, F401 - after bp and NAV, which the modules use
    configuration_pages,
    inbound_pages,
    oauth_pages,
    outbox_pages,
    pages,
    plugin_pages,
    profile_pages,
    resolver_pages,
    retry_pages,
    rules_pages,
    signature_pages,
    worker_pages,
)
