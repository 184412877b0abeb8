"""Contact-centre parameters (``postroom config ...``, ``ic_configuration_parameter``): the failure-mail
addresses (mail from them is read as a bounce) and the incoming → outgoing profile mapping (replies to
mail fetched by one profile go out through another), and ``postroom reload`` for running workers.

Values are checked by ``core/data/configuration.py``, the CLI's check: a refusal is its sentence.
"""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from postroom.core.contract.errors import UserError
from postroom.core.data import configuration, profiles
from postroom.web.audit import record
from postroom.web.auth import current_user, operator_required
from postroom.web.operator import bp
from postroom.web.operator.ops_common import CENTER, refused
from postroom.web.state import transaction

TEMPLATE = "operator/configuration.html"


def _actor() -> str:
    user = current_user()
    assert user is not None  # @operator_required
    return user.name


def _context(**typed: str) -> dict[str, Any]:
    with transaction() as db:
        names = profiles.profile_names(db)
        rows = configuration.parameters_as_json(db, CENTER)
        live = [p.name for p in profiles.live_profiles(db, CENTER)]
    mappings = []
    for row in rows:
        if row["name"] != configuration.PROFILE_MAPPING:
            continue
        try:
            pairs = json.loads(row["value"]).items()
        except (ValueError, AttributeError):
            pairs = []
        shown = [f"{names.get(int(s), f'#{s}')} → {names.get(int(t), f'#{t}')}" for s, t in pairs]
        mappings.append({**row, "shown": shown})
    return {
        "failure_rows": [r for r in rows if r["name"] == configuration.FAILURE_MAIL],
        "mappings": mappings,
        "other_rows": [
            r for r in rows if r["name"] not in (configuration.FAILURE_MAIL, configuration.PROFILE_MAPPING)
        ],
        "profile_names": live,
        "typed": typed,
    }


@bp.get("/configuration")
@operator_required
def configuration_page() -> str:
    return render_template(TEMPLATE, **_context())


@bp.post("/configuration/failure-addresses")
@operator_required
def add_failure_address() -> Response | tuple[str, int]:
    address = request.form.get("address", "").strip()
    try:
        with transaction() as db:
            configuration.add_value(db, CENTER, configuration.FAILURE_MAIL, address)
            record(db, _actor(), "config.add", configuration.FAILURE_MAIL, {"value": address})
    except UserError as error:
        return refused(error, TEMPLATE, **_context(address=address))
    flash(f"{configuration.FAILURE_MAIL} += {address}", "info")
    return redirect(url_for("operator.configuration_page"))


@bp.post("/configuration/mappings")
@operator_required
def add_mapping() -> Response | tuple[str, int]:
    incoming, outgoing = request.form.get("incoming", ""), request.form.get("outgoing", "")
    try:
        with transaction() as db:
            source = profiles.get_profile(db, incoming, CENTER).id
            target = profiles.get_profile(db, outgoing, CENTER).id
            value = json.dumps({str(source): str(target)})
            configuration.add_value(db, CENTER, configuration.PROFILE_MAPPING, value)
            record(
                db,
                _actor(),
                "config.add",
                configuration.PROFILE_MAPPING,
                {"value": value, "incoming": incoming, "outgoing": outgoing},
            )
    except UserError as error:
        return refused(error, TEMPLATE, **_context())
    flash(f"Replies to mail fetched by {incoming!r} go out through {outgoing!r}.", "info")
    return redirect(url_for("operator.configuration_page"))


@bp.post("/configuration/remove")
@operator_required
def remove_parameter() -> Response | tuple[str, int]:
    name, value = request.form.get("name", ""), request.form.get("value", "")
    try:
        with transaction() as db:
            removed = configuration.remove_values(db, CENTER, name, value)
            if not removed:
                raise UserError(f"No {configuration.canonical_name(name)} row matched; nothing was removed.")
            record(db, _actor(), "config.remove", configuration.canonical_name(name), {"value": value})
    except UserError as error:
        return refused(error, TEMPLATE, **_context())
    flash(f"Removed {removed} row(s).", "info")
    return redirect(url_for("operator.configuration_page"))


@bp.post("/configuration/reload")
@operator_required
def reload_workers() -> Response:
    with transaction() as db:
        generation = configuration.reload_configuration(db)
        record(db, _actor(), "config.reload", str(generation), {})
    flash(f"Configuration generation {generation}: running workers pick it up on their next cycle.", "info")
    return redirect(url_for("operator.configuration_page"))
