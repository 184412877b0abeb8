"""Plugins on and off (``postroom plugins list|enable|disable``): every plugin, builtin and installed,
with its status; a failed one with its one-sentence reason and the command that removes it.

A switch is the database's (``plugin_switch``): it holds for every process on this database; the
console's own process reloads its plugins at once, running workers after ``postroom reload``.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from postroom.core.contract.errors import UserError
from postroom.web.audit import record
from postroom.web.auth import current_user, operator_required
from postroom.web.operator import bp
from postroom.web.operator.ops_common import refused
from postroom.web.state import postroom_app

TEMPLATE = "operator/plugins.html"


def _plugins() -> list[dict[str, object]]:
    return [info.as_json() for info in postroom_app().list_plugins()]


@bp.get("/plugins")
@operator_required
def plugins_list() -> str:
    return render_template(TEMPLATE, plugins=_plugins())


@bp.post("/plugins/<name>/switch")
@operator_required
def switch_plugin(name: str) -> Response | tuple[str, int]:
    user = current_user()
    assert user is not None  # @operator_required
    enabled = request.form.get("enabled") == "yes"

    def audit(db: Session) -> None:
        record(db, user.name, "plugin.enable" if enabled else "plugin.disable", name, {})

    try:
        postroom_app().set_plugin_enabled(name, enabled, also=audit)
    except UserError as error:
        return refused(error, TEMPLATE, plugins=_plugins())
    flash(
        f"Plugin {name!r} is {'enabled' if enabled else 'disabled'} "
        "(running workers follow after 'postroom reload').",
        "info",
    )
    return redirect(url_for("operator.plugins_list"))
