"""The agent's landing page (a placeholder until the inbox lands)."""

from __future__ import annotations

from flask import render_template

from postroom.web.agent import bp
from postroom.web.auth import agent_required


@bp.get("/inbox")
@agent_required
def inbox() -> str:
    return render_template("agent/inbox.html")
