"""Routing rules (``postroom rule ...``): the list in the order they are tried, add, edit, switch,
move and delete, through the same core functions as the CLI, so a refusal is the CLI's sentence.

A rule that is added, edited or enabled routes the profile's held (unrouted) mail again, as
``postroom rule add|enable`` does: in a transaction of its own after the change's commit, so the
change stands even if a held mail breaks a plugin (that mail is quarantined alone).
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from postroom.core.contract.errors import UserError
from postroom.core.data import directory, profiles, rules
from postroom.core.data.models import RoutingRule
from postroom.core.inbound.reroute import reroute_held
from postroom.web.audit import record
from postroom.web.auth import current_user, operator_required
from postroom.web.operator import bp
from postroom.web.operator.ops_common import CENTER, parse_int, refused
from postroom.web.state import postroom_app, transaction

#: The form's pattern fields and the rule's matching keyword arguments.
PATTERNS = (("from", "from_pattern"), ("to", "to_pattern"), ("subject", "subject_pattern"))


def _actor() -> str:
    user = current_user()
    assert user is not None  # @operator_required
    return user.name


def _choices() -> dict[str, Any]:
    """The profiles, campaigns and queue names the rule form offers."""
    with transaction() as db:
        return {
            "profile_names": [p.name for p in profiles.live_profiles(db, CENTER)],
            "campaigns": directory.campaigns_as_json(db, CENTER),
        }


def _list_context(form: dict[str, str] | None = None) -> dict[str, Any]:
    with transaction() as db:
        documents = rules.rules_as_json(db, CENTER)
    return {"rules": documents, "form": form or {"priority": "100"}, **_choices()}


def _form() -> dict[str, str]:
    fields = ("profile", "campaign", "queue", "priority", *(name for name, _ in PATTERNS))
    return {name: request.form.get(name, "").strip() for name in fields}


def _patterns(form: dict[str, str]) -> dict[str, str | None]:
    return {keyword: form[name] or None for name, keyword in PATTERNS}


def _reroute(profile_name: str) -> None:
    routed = reroute_held(postroom_app(), profile_name, CENTER)
    if routed:
        flash(f"Routed {routed} held mail(s) of profile {profile_name!r}.", "info")


@bp.get("/rules")
@operator_required
def rules_list() -> str:
    return render_template("operator/rules.html", **_list_context())


@bp.post("/rules")
@operator_required
def add_rule() -> Response | tuple[str, int]:
    form = _form()
    try:
        priority = parse_int(form["priority"] or "100", "rule priority")
        with transaction() as db:
            profile = profiles.get_profile(db, form["profile"], CENTER)
            campaign = directory.get_campaign(db, CENTER, form["campaign"])
            queue = directory.get_queue(db, campaign, form["queue"])
            rule = rules.add_rule(db, profile, campaign, queue, priority=priority, **_patterns(form))
            rule_id = rule.id
            record(db, _actor(), "rule.add", str(rule_id), {**form, "priority": priority})
    except UserError as error:
        return refused(error, "operator/rules.html", **_list_context(form))
    flash(f"Added rule {rule_id}: {form['profile']} -> {form['campaign']} / {form['queue']}.", "info")
    _reroute(form["profile"])
    return redirect(url_for("operator.rules_list"))


def _rule_form(rule_id: int) -> dict[str, str]:
    with transaction() as db:
        rules.get_rule(db, CENTER, rule_id)  # not there: the core's sentence
        document = next(d for d in rules.rules_as_json(db, CENTER) if d["id"] == rule_id)
    keys = ("profile", "campaign", "queue", "priority", "from", "to", "subject")
    return {key: "" if document[key] is None else str(document[key]) for key in keys}


@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@operator_required
def edit_rule(rule_id: int) -> Response | tuple[str, int] | str:
    try:
        stored = _rule_form(rule_id)
    except UserError as error:
        return refused(error, "operator/rules.html", **_list_context())
    if request.method == "GET":
        return render_template("operator/rule_form.html", rule_id=rule_id, form=stored, **_choices())
    form = {**_form(), "profile": stored["profile"]}
    try:
        priority = parse_int(form["priority"], "rule priority")
        with transaction() as db:
            campaign = directory.get_campaign(db, CENTER, form["campaign"])
            queue = directory.get_queue(db, campaign, form["queue"])
            rule = rules.modify_rule(
                db, CENTER, rule_id, campaign, queue, priority=priority, **_patterns(form)
            )
            enabled = rule.enabled
            changed = {key: form[key] for key in form if form[key] != stored[key]}
            record(db, _actor(), "rule.modify", str(rule_id), changed)
    except UserError as error:
        flash(str(error), "error")
        return render_template("operator/rule_form.html", rule_id=rule_id, form=form, **_choices()), 400
    flash(f"Rule {rule_id} is changed.", "info")
    if enabled:
        _reroute(form["profile"])
    return redirect(url_for("operator.rules_list"))


def _act(rule_id: int, action: str, change: Any) -> Response | tuple[str, int]:
    """Run ``change(db)`` (a core call) with its audit entry; a refusal is shown on the list."""
    try:
        with transaction() as db:
            detail = change(db)
            record(db, _actor(), action, str(rule_id), detail)
    except UserError as error:
        return refused(error, "operator/rules.html", **_list_context())
    return redirect(url_for("operator.rules_list"))


@bp.post("/rules/<int:rule_id>/delete")
@operator_required
def delete_rule(rule_id: int) -> Response | tuple[str, int]:
    def change(db: Any) -> dict[str, Any]:
        rules.delete_rule(db, CENTER, rule_id)
        return {}

    answer = _act(rule_id, "rule.delete", change)
    if isinstance(answer, Response):
        flash(f"Deleted rule {rule_id}.", "info")
    return answer


@bp.post("/rules/<int:rule_id>/switch")
@operator_required
def switch_rule(rule_id: int) -> Response | tuple[str, int]:
    enabled = request.form.get("enabled") == "yes"
    profile_name: list[str] = []

    def change(db: Any) -> dict[str, Any]:
        profile_name.append(rules.set_rule_enabled(db, CENTER, rule_id, enabled).name)
        return {"enabled": enabled}

    answer = _act(rule_id, "rule.enable" if enabled else "rule.disable", change)
    if isinstance(answer, Response):
        flash(f"Rule {rule_id} is {'enabled' if enabled else 'disabled'}.", "info")
        if enabled:
            _reroute(profile_name[0])
    return answer


@bp.post("/rules/<int:rule_id>/move")
@operator_required
def move_rule(rule_id: int) -> Response | tuple[str, int]:
    step = -1 if request.form.get("direction") == "up" else 1

    def change(db: Any) -> dict[str, Any]:
        ordered: list[RoutingRule] = rules.move_rule(db, CENTER, rule_id, step)
        return {"order": [r.id for r in ordered], "priorities": [r.priority for r in ordered]}

    return _act(rule_id, "rule.reorder", change)
