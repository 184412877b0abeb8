"""The operator's landing page (a placeholder until the media-profile pages land)."""

from __future__ import annotations

from flask import render_template

from postroom.web.auth import operator_required
from postroom.web.operator import bp


@bp.get("/profiles")
@operator_required
def profiles() -> str:
    return render_template("operator/profiles.html")
