"""A profile's ticket resolvers in priority order: move one up or down, add one, remove one.

Each button is a small POST form (it works without JavaScript); every change computes the new order
and hands the whole list to the core's ``set_resolvers``, as ``postroom profile resolvers`` does.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from postroom.core.contract.errors import UserError
from postroom.core.data import profiles
from postroom.web.audit import record
from postroom.web.auth import operator_required
from postroom.web.operator import bp
from postroom.web.operator.profile_pages import actor, find_profile
from postroom.web.state import postroom_app, transaction


def _new_order(current: list[str], action: str, resolver: str) -> list[str]:
    """The list after ``action`` (up, down, add, remove) on ``resolver``; unknown names go to the core."""
    order = list(current)
    if action == "add":
        return [*order, resolver]
    if resolver not in order:
        raise UserError(f"The profile does not use the resolver {resolver!r}.")
    index = order.index(resolver)
    if action == "remove":
        del order[index]
    elif action == "up" and index > 0:
        order[index - 1], order[index] = order[index], order[index - 1]
    elif action == "down" and index < len(order) - 1:
        order[index + 1], order[index] = order[index], order[index + 1]
    return order


@bp.route("/profiles/<name>/resolvers", methods=["GET", "POST"])
@operator_required
def profile_resolvers(name: str) -> Any:
    plugins = postroom_app().plugins
    error = None
    if request.method == "POST":
        action = request.form.get("action", "")
        resolver = request.form.get("resolver", "")
        try:
            if action not in ("up", "down", "add", "remove"):
                raise UserError(f"Unknown action {action!r}.")
            with transaction() as db:
                profile = find_profile(db, name)
                before = [r.resolver_name for r in profile.resolvers]
                after = _new_order(before, action, resolver)
                profiles.set_resolvers(db, plugins, profile, after)
                record(db, actor(), "resolver.reorder", name, {"action": action, "resolver": resolver, "before": before, "after": after})
        except UserError as error_:
            error = str(error_)
        else:
            flash(f"Profile {name!r} resolves tickets with: {', '.join(after) or 'no resolver'}.", "info")
            return redirect(url_for("operator.profile_resolvers", name=name))
    with transaction() as db:
        current = [r.resolver_name for r in find_profile(db, name).resolvers]
    available = [r for r in sorted(plugins.resolvers) if r not in current]
    page = render_template(
        "operator/profile_resolvers.html", name=name, current=current, available=available, error=error
    )
    return (page, 400) if error else page
