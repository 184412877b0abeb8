"""Retry: a profile's retry variables (``postroom profile retry``) and the category → policy table,
for one profile or for the contact centre (``postroom retry policies|set-policy|reset``).

The writes are the core's (``configuration.set_retry_settings``, ``retry_policies.set_policy`` and
``reset``), with the CLI's refusals; each shares its transaction with the audit entry.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from postroom.core.contract.errors import UserError
from postroom.core.contract.retry import RETRY_RANGES
from postroom.core.data import configuration, retry_policies
from postroom.web.audit import record
from postroom.web.auth import operator_required
from postroom.web.operator import bp
from postroom.web.operator.profile_forms import Field, _integer
from postroom.web.operator.profile_pages import CONTACT_CENTER, actor, find_profile
from postroom.web.state import postroom_app, transaction

#: The retry variables, as ``postroom profile retry`` names them.
VARIABLES = [
    Field("max_retry_count", "Max retry count", "Retries after the first attempt (maxRetryCount).", "int"),
    Field("rate_limit_retry_time", "Rate-limit retry time", "Seconds to wait after a rate limit (rateLimitRetryTime).", "int"),
    Field(
        "progressive_retry_interval",
        "Progressive retry interval",
        "Seconds of the first wait; each retry waits longer (progressiveRetryInterval).",
        "int",
    ),
]


def _policy_change(name: str | None) -> None:
    """Apply the posted policy form (set or reset one category) at the level of profile ``name``, or
    the contact centre's when None."""
    category = request.form.get("category", "")
    installed = set(postroom_app().plugins.policies)
    with transaction() as db:
        profile = find_profile(db, name) if name is not None else None
        if request.form.get("action") == "reset":
            dropped = retry_policies.reset(db, CONTACT_CENTER, category, profile)
            action, detail = "retry.reset", {"category": category, "dropped": dropped}
        else:
            policy = request.form.get("policy", "")
            choice = retry_policies.set_policy(
                db, CONTACT_CENTER, category, policy, installed, profile
            )
            action, detail = "retry.set-policy", choice.as_json()
        record(db, actor(), action, name or "contact centre", detail)


def _table(profile_id: int | None) -> dict[str, Any]:
    installed = postroom_app().plugins.policies
    with transaction() as db:
        rows = retry_policies.table(db, CONTACT_CENTER, profile_id)
    return {
        "rows": [{**row.as_json(), "installed": row.policy in installed} for row in rows],
        "policies": {name: cls.LABEL for name, cls in sorted(installed.items())},
    }


@bp.route("/retry", methods=["GET", "POST"], endpoint="retry_policies")
@operator_required
def retry_policies_page() -> Any:
    """The contact centre's table: what every profile uses unless it chooses otherwise."""
    error = None
    if request.method == "POST":
        try:
            _policy_change(None)
        except UserError as error_:
            error = str(error_)
        else:
            flash("The contact centre's retry policies are saved (running workers use them from their next send).", "info")
            return redirect(url_for("operator.retry_policies"))
    page = render_template("operator/retry.html", name=None, error=error, variables=None, **_table(None))
    return (page, 400) if error else page


@bp.route("/profiles/<name>/retry", methods=["GET", "POST"])
@operator_required
def profile_retry(name: str) -> Any:
    error = None
    if request.method == "POST":
        try:
            if request.form.get("form") == "variables":
                values = {f.name: _integer(request.form.get(f.name, ""), f) for f in VARIABLES}
                with transaction() as db:
                    settings = configuration.set_retry_settings(db, find_profile(db, name), **values)
                    record(db, actor(), "retry.variables", name, {k: v for k, v in values.items() if v is not None})
                flash(
                    f"Profile {name!r}: maxRetryCount={settings.max_retry_count}, "
                    f"rateLimitRetryTime={settings.rate_limit_retry_time}s, "
                    f"progressiveRetryInterval={settings.progressive_retry_interval}s "
                    "(running workers use them after 'postroom reload').",
                    "info",
                )
            else:
                _policy_change(name)
                flash(f"The retry policies of profile {name!r} are saved.", "info")
        except UserError as error_:
            error = str(error_)
        else:
            return redirect(url_for("operator.profile_retry", name=name))
    with transaction() as db:
        profile = find_profile(db, name)
        settings = configuration.retry_settings(db, profile.id)
        profile_id = profile.id
    variables = [(f, getattr(settings, f.name), RETRY_RANGES[f.name][1:]) for f in VARIABLES]
    page = render_template(
        "operator/retry.html", name=name, error=error, variables=variables, **_table(profile_id)
    )
    return (page, 400) if error else page
