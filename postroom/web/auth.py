"""Signing in and out, who is signed in, and who may open what.

The session cookie (Flask's, signed with the key of ``web_accounts.session_key``) holds a random
token whose digest is a ``web_session`` row: signing out deletes the row, so a copy of the cookie is
dead too; a new password or a removed account deletes all of the account's rows. Failed sign-ins are counted in the database (``sign_in_failure``), so
the limit holds across waitress's threads and across processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from postroom.core.data import web_accounts
from postroom.core.data.models import WebRole, WebUser
from postroom.web import users
from postroom.web.state import transaction

bp = Blueprint("auth", __name__)

P = ParamSpec("P")
R = TypeVar("R")

TOO_MANY = (
    f"Too many failed sign-ins for this name or from this address; wait "
    f"{int(web_accounts.FAILURE_WINDOW.total_seconds() // 60)} minutes and try again."
)
WRONG = "Wrong name or password."


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in account as pages see it (no database object escapes the request's transaction)."""

    id: int
    name: str
    role: WebRole
    #: The queues an agent works (ignored for operators, who see every queue).
    queue_ids: frozenset[int]

    @property
    def is_operator(self) -> bool:
        return self.role is WebRole.OPERATOR


def _as_current(user: WebUser) -> CurrentUser:
    return CurrentUser(user.id, user.name, WebRole(user.role), frozenset(q.id for q in user.queues))


def current_user() -> CurrentUser | None:
    """The signed-in account of this request, or None."""
    if "user" not in g:
        g.user = _load_user()
    user: CurrentUser | None = g.user
    return user


def _load_user() -> CurrentUser | None:
    token = session.get("token")
    if not isinstance(token, str):
        return None
    with transaction() as db:
        user = web_accounts.session_user(db, token)
        if user is None:
            session.clear()
            return None
        return _as_current(user)


def can_see_queue(user: CurrentUser, queue_id: int | None) -> bool:
    """Whether ``user`` may see a ticket of queue ``queue_id`` (operators every queue; agents their own)."""
    return user.is_operator or (queue_id is not None and queue_id in user.queue_ids)


def _require(allowed: Callable[[CurrentUser], bool]) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            user = current_user()
            if user is None:
                return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
            if not allowed(user):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


#: A page for operators only: others signed in get 403, anyone signed out goes to the sign-in page.
operator_required = _require(lambda user: user.is_operator)
#: A page for agents (and operators, who see every queue): signed-out visitors go to the sign-in page.
#: Pages showing a ticket must still check :func:`can_see_queue`.
agent_required = _require(lambda user: True)


def landing(user: CurrentUser) -> str:
    return url_for("operator.profiles") if user.is_operator else url_for("agent.inbox")


def _safe_next(target: str | None) -> str | None:
    """A path on this site to go on to after signing in (never another site: no scheme, no //)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.get("/")
def home() -> Response:
    user = current_user()
    return redirect(landing(user) if user else url_for("auth.sign_in"))


@bp.route("/signin", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int] | str:
    if request.method == "GET":
        return render_template("signin.html", next=_safe_next(request.args.get("next")))
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    client = request.remote_addr or "unknown"
    with transaction() as db:
        web_accounts.forget_old_failures(db)
        if web_accounts.too_many_failures(db, name, client):
            flash(TOO_MANY, "error")
            return render_template("signin.html", name=name, next=_safe_next(request.form.get("next"))), 429
        user = users.verify(db, name, password)
        if user is None:
            web_accounts.record_failure(db, name, client)
        else:
            token = web_accounts.open_session(db, user)
            who = _as_current(user)
    if user is None:
        flash(WRONG, "error")
        return render_template("signin.html", name=name, next=_safe_next(request.form.get("next"))), 401
    session.clear()  # a fresh session on sign-in: nothing carried over from before (session fixation)
    session["token"] = token
    session.permanent = True
    g.user = who
    return redirect(_safe_next(request.form.get("next")) or landing(who))


@bp.post("/signout")
def sign_out() -> Response:
    token = session.get("token")
    if isinstance(token, str):
        with transaction() as db:
            web_accounts.close_session(db, token)
    session.clear()
    g.user = None
    flash("You are signed out.", "info")
    return redirect(url_for("auth.sign_in"))
