"""A profile's HTML signature: edit it, choose before or after the quoted text, and preview it.

Saving is the core's ``set_signature`` (sanitised with nh3, as ``postroom profile signature``). The
preview sanitises the typed HTML the same way and fills the placeholders as the builtin signature
plugin does when a reply is composed (values HTML-escaped; an unknown ``{name}`` stays as typed),
with example values, so what the page shows is what a reply would carry.
"""

from __future__ import annotations

import html
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from postroom.core.contract.errors import UserError
from postroom.core.data import profiles
from postroom.core.data.models import utcnow
from postroom.core.mail.build import html_to_text
from postroom.core.mail.subjects import format_case_token
from postroom.plugins.signature import fill_placeholders
from postroom.web.audit import record
from postroom.web.auth import operator_required
from postroom.web.operator import bp
from postroom.web.operator.profile_pages import actor, find_profile
from postroom.web.state import transaction

#: The placeholders the builtin signature plugin fills, and what the preview puts in their place.
PLACEHOLDERS = ("agent_name", "customer_name", "ticket_id", "campaign", "profile_name", "date", "case_token")


def example_values(profile_name: str) -> dict[str, str]:
    return {
        "agent_name": actor(),
        "customer_name": "Jane Customer",
        "ticket_id": "42",
        "campaign": "Example campaign",
        "profile_name": profile_name,
        "date": utcnow().strftime("%Y-%m-%d"),
        "case_token": format_case_token(None, 42),
    }


def preview(markup: str, profile_name: str) -> dict[str, str]:
    """The signature as a reply would carry it: its HTML part (sanitised, filled) and its text part."""
    clean = profiles.sanitise_signature(markup) if markup.strip() else ""
    values = example_values(profile_name)
    return {"html": fill_placeholders(clean, values, html.escape), "text": fill_placeholders(html_to_text(clean), values)}


@bp.route("/profiles/<name>/signature", methods=["GET", "POST"])
@operator_required
def profile_signature(name: str) -> Any:
    error = None
    shown: dict[str, str] | None = None
    if request.method == "POST":
        markup = request.form.get("signature", "")
        position = request.form.get("position") or None
        if request.form.get("action") == "preview":
            shown = preview(markup, name)
        else:
            try:
                with transaction() as db:
                    profile = find_profile(db, name)
                    profiles.set_signature(profile, markup, position)
                    record(db, actor(), "profile.signature", name, {"position": profile.signature_position, "characters": len(profile.signature_html or "")})
            except UserError as error_:
                error = str(error_)
            else:
                flash(f"Signature of profile {name!r} saved.", "info")
                return redirect(url_for("operator.profile_signature", name=name))
    else:
        with transaction() as db:
            profile = find_profile(db, name)
            markup, position = profile.signature_html or "", profile.signature_position or "before"
        shown = preview(markup, name) if markup else None
    page = render_template(
        "operator/signature.html",
        name=name,
        markup=markup,
        position=position or "before",
        shown=shown,
        placeholders=PLACEHOLDERS,
        error=error,
    )
    return (page, 400) if error else page
