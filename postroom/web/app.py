"""The console's Flask application factory: configuration, CSRF, security headers, blueprints."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from postroom.core.app import Postroom
from postroom.core.data import web_accounts
from postroom.web import agent, audit, auth, operator
from postroom.web.state import EXTENSION

CROSS_SITE = "This form was sent from another site, so postroom refused it; use postroom's own pages."
NO_TOKEN = "This form's security token is missing or out of date; reload the page and send the form again."

#: Messages for the error pages, by status.
_ERRORS = {
    400: "The request could not be understood.",
    403: "Your account may not open this page.",
    404: "There is no such page.",
    405: "This page does not take that kind of request.",
}


def create_app(postroom_app: Postroom, *, secret_key: str, secure_cookies: bool) -> Flask:
    """The console for ``postroom_app``'s database. ``secret_key`` signs the session cookie
    (``web_accounts.session_key``); ``secure_cookies`` sends it over HTTPS only."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="postroom_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        PERMANENT_SESSION_LIFETIME=web_accounts.SESSION_LIFETIME,
        # The token is bound to the session; a form left open over lunch still posts.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=50 * 1024 * 1024,
    )
    app.extensions[EXTENSION] = postroom_app
    # Registered before CSRFProtect's own check, so a cross-origin post gets the clearer sentence.
    app.before_request(_refuse_cross_origin)
    CSRFProtect(app)
    for blueprint in (auth.bp, audit.bp, operator.bp, agent.bp):
        app.register_blueprint(blueprint)
    app.context_processor(_template_globals)
    app.add_template_filter(when)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def when(value: datetime | str | None, empty: str = "") -> str:
    """A time as pages show it: UTC, to the second, ``2026-11-30 15:04:05 UTC``; ``empty`` for none.

    Takes a datetime or the ISO text of the core's JSON documents (a naive time is UTC, as stored).
    """
    if value is None or value == "":
        return empty
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _template_globals() -> dict[str, object]:
    user = auth.current_user()
    # Operators see every queue's tickets too: their navigation ends with the agent's pages.
    nav = [] if user is None else ([*operator.NAV, *agent.NAV] if user.is_operator else agent.NAV)
    return {"current_user": user, "nav": nav}


def _refuse_cross_origin() -> tuple[str, int] | None:
    """Refuse a state-changing request whose Origin (or, without one, Referer) is another site."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source and (source == "null" or urlsplit(source).netloc != request.host):
        return render_template("error.html", message=CROSS_SITE), 403
    return None


def _csrf_error(error: CSRFError) -> tuple[str, int]:
    return render_template("error.html", message=NO_TOKEN), 400


def _http_error(error: HTTPException) -> tuple[str, int] | HTTPException:
    code = error.code or 500
    if code in _ERRORS:
        return render_template("error.html", message=_ERRORS[code]), code
    return error


def _security_headers(response: Response) -> Response:
    """No framing (clickjacking), no sniffing, scripts and styles from this site only, no caching of pages."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
