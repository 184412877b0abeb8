"""The media-profile pages: the list, the add and edit forms, and delete with its confirmation.

Every change goes through the core's own function (``create_profile``, ``modify_profile``,
``delete_profile``), as ``postroom profile add|modify|delete`` does, so a refused value is refused
with the CLI's sentence; the change and its audit entry share one transaction.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import NO_PROTOCOL
from postroom.core.data import profiles
from postroom.core.data.columns import width
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.idle_switch import idle_enabled, set_idle
from postroom.core.data.models import (
    MediaProfile,
    Message,
    RoutingRule,
    Ticket,
    agent_media_profile,
    campaign_media_profile,
    queue_media_profile,
)
from postroom.web.audit import record
from postroom.web.auth import current_user, operator_required
from postroom.web.operator import bp
from postroom.web.operator.profile_forms import (
    FIELDS,
    LOGINS,
    SECTIONS,
    audit_detail,
    changes_only,
    read_form,
)
from postroom.web.state import postroom_app, transaction

#: The contact centre the console administers (the CLI's default, ``--contact-center`` unset).
CONTACT_CENTER = DEFAULT_CONTACT_CENTER_ID


def actor() -> str:
    user = current_user()
    assert user is not None  # operator_required
    return user.name


def find_profile(session: Session, name: str) -> MediaProfile:
    """The live profile called ``name``; a 404 page when there is none (the core's sentence)."""
    try:
        return profiles.get_profile(session, name, CONTACT_CENTER)
    except UserError as error:
        abort(404, str(error))


def protocol_choices() -> dict[str, list[str]]:
    """The enabled protocols that can fetch and that can send, as the CLI's help lists them."""
    installed = postroom_app().plugins.protocols
    return {
        direction: [NO_PROTOCOL, *sorted(n for n, c in installed.items() if getattr(c, attribute))]
        for direction, attribute in (("fetch", "CAN_FETCH"), ("send", "CAN_SEND"))
    }


def _form_page(template_values: dict[str, Any], status: int = 200) -> tuple[str, int]:
    return (
        render_template(
            "operator/profile_form.html",
            sections=SECTIONS,
            logins=LOGINS,
            protocols=protocol_choices(),
            send_from_limit=width(MediaProfile.send_from_name),
            **template_values,
        ),
        status,
    )


@bp.get("/profiles", endpoint="profiles")
@operator_required
def profiles_page() -> str:
    with transaction() as db:
        rows = [profiles.profile_as_json(p) for p in profiles.live_profiles(db, CONTACT_CENTER)]
    return render_template("operator/profiles.html", profiles=rows)


@bp.route("/profiles/new", methods=["GET", "POST"])
@operator_required
def new_profile() -> Any:
    if request.method == "GET":
        return _form_page({"creating": True, "values": {}, "name": ""})
    name = request.form.get("name", "")
    try:
        posted = read_form(request.form, creating=True)
        resolvers = [r.strip() for r in request.form.get("resolvers", "").split(",") if r.strip()]
        app = postroom_app()
        with transaction() as db:
            profile = profiles.create_profile(db, app.plugins, CONTACT_CENTER, name, posted.fields)
            if posted.idle is not None:
                set_idle(db, profile, posted.idle)
            if resolvers:
                profiles.set_resolvers(db, app.plugins, profile, resolvers)
            detail = {**audit_detail(posted.fields), "idle": posted.idle, "resolvers": resolvers}
            record(db, actor(), "profile.add", profile.name, detail)
            created = profile.name
    except UserError as error:
        values = _posted_values(creating=True)
        return _form_page({"creating": True, "values": values, "name": name, "error": str(error)}, 400)
    flash(f"Created profile {created!r}.", "info")
    return redirect(url_for("operator.edit_profile", name=created))


def _posted_values(*, creating: bool) -> dict[str, Any]:
    """What the operator typed, to show the refused form again: never a password; a checkbox as ticked or not."""
    values: dict[str, Any] = {k: v for k, v in request.form.items() if "password" not in k}
    for field in FIELDS:
        if field.kind == "flag" and not (creating and field.name in ("incoming_allowed", "outgoing_allowed")):
            values[field.name] = field.name in request.form
    return values


def _current_values(db: Session, profile: MediaProfile) -> dict[str, Any]:
    """The edit form's values: the profile's JSON view (no secret in it) with the form's names."""
    values = profiles.profile_as_json(profile)
    values["reply_to"] = profile.reply_to_address if profile.reply_to_enabled else ""
    values["idle"] = idle_enabled(db, profile.id)
    return values


@bp.route("/profiles/<name>", methods=["GET", "POST"])
@operator_required
def edit_profile(name: str) -> Any:
    if request.method == "GET":
        with transaction() as db:
            profile = find_profile(db, name)
            values = _current_values(db, profile)
            details = profiles.profile_details(db, profile)
        return _form_page({"creating": False, "values": values, "name": name, "details": details})
    try:
        posted = read_form(request.form, creating=False)
        with transaction() as db:
            profile = find_profile(db, name)
            before = {**profiles.profile_as_json(profile), "idle": idle_enabled(db, profile.id)}
            given = changes_only(posted.fields, _current_values(db, profile))
            profiles.modify_profile(db, postroom_app().plugins, profile, given)
            if posted.idle is not None:
                set_idle(db, profile, posted.idle)
            after = {**profiles.profile_as_json(profile), "idle": idle_enabled(db, profile.id)}
            changed = {key: value for key, value in after.items() if before[key] != value}
            secrets = {key: "(changed)" for key in ("password", "outgoing_password") if getattr(given, key)}
            record(db, actor(), "profile.modify", name, {**changed, **secrets})
    except UserError as error:
        with transaction() as db:
            profile = find_profile(db, name)
            values = {**_current_values(db, profile), **_posted_values(creating=False)}
            details = profiles.profile_details(db, profile)
        page = {"creating": False, "values": values, "name": name, "details": details, "error": str(error)}
        return _form_page(page, 400)
    flash(f"Updated profile {name!r}.", "info")
    return redirect(url_for("operator.edit_profile", name=name))


def detaches(db: Session, profile: MediaProfile) -> dict[str, int]:
    """What deleting ``profile`` detaches (``delete_profile``): links and rules go, tickets and messages stay."""

    def count(query: Any) -> int:
        return int(db.scalar(query) or 0)

    pid = profile.id
    return {
        "campaigns": count(select(func.count()).select_from(campaign_media_profile).where(campaign_media_profile.c.media_profile_id == pid)),
        "queues": count(select(func.count()).select_from(queue_media_profile).where(queue_media_profile.c.media_profile_id == pid)),
        "agents": count(select(func.count()).select_from(agent_media_profile).where(agent_media_profile.c.media_profile_id == pid)),
        "rules": count(select(func.count()).where(RoutingRule.media_profile_id == pid, RoutingRule.enabled.is_(True))),
        "tickets": count(select(func.count()).where(Ticket.source_profile_id == pid)),
        "messages": count(select(func.count()).where(Message.media_profile_id == pid)),
    }


@bp.route("/profiles/<name>/delete", methods=["GET", "POST"])
@operator_required
def delete_profile(name: str) -> Any:
    if request.method == "GET":
        with transaction() as db:
            counts = detaches(db, find_profile(db, name))
        return render_template("operator/profile_delete.html", name=name, counts=counts)
    with transaction() as db:
        profile = find_profile(db, name)
        counts = detaches(db, profile)
        profiles.delete_profile(db, profile)
        record(db, actor(), "profile.delete", name, counts)
    flash(f"Deleted profile {name!r}.", "info")
    return redirect(url_for("operator.profiles"))
