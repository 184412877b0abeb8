"""Worker status: the workers by the fetch leases and send claims they hold, each fetching profile's
last and next fetch, error and IDLE watching, read from the database (``core/data/worker_status.py``);
the worker's admin endpoint is not needed."""

from __future__ import annotations

from flask import render_template

from postroom.core.data.worker_status import worker_status
from postroom.web.auth import operator_required
from postroom.web.operator import bp
from postroom.web.operator.ops_common import CENTER
from postroom.web.state import postroom_app, transaction


@bp.get("/workers")
@operator_required
def workers_page() -> str:
    with transaction() as db:
        status = worker_status(db, postroom_app().plugins, CENTER)
    return render_template("operator/workers.html", status=status)
