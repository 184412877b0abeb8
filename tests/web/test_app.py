"""The application factory's settings, seen through Flask's test client (no browser needed)."""

from __future__ import annotations

import re

from postroom.core.app import Postroom
from postroom.core.data.models import WebRole
from postroom.web import users
from postroom.web.app import create_app
from postroom.web.auth import CurrentUser, can_see_queue


def _signed_in_cookie_header(app: Postroom, secure: bool) -> str:
    with app.transaction() as session:
        users.create_user(session, "test", "ada", "a long enough password", "operator", [], 1)
    client = create_app(app, secret_key="k" * 32, secure_cookies=secure).test_client()
    page = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/signin", data={"csrf_token": token.group(1), "name": "ada", "password": "a long enough password"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/profiles"
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("postroom_session="))


def test_with_secure_cookies_the_session_cookie_is_secure_httponly_and_lax(app: Postroom) -> None:
    cookie = _signed_in_cookie_header(app, secure=True)
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie


def test_without_secure_cookies_the_cookie_is_not_marked_secure(app: Postroom) -> None:
    cookie = _signed_in_cookie_header(app, secure=False)
    assert "; Secure" not in cookie and "; HttpOnly" in cookie


def test_pages_forbid_framing_and_foreign_scripts(app: Postroom) -> None:
    response = create_app(app, secret_key="k" * 32, secure_cookies=False).test_client().get("/signin")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_an_agent_sees_only_their_queues_and_an_operator_every_queue() -> None:
    agent = CurrentUser(1, "sam", WebRole.AGENT, frozenset({3}))
    operator = CurrentUser(2, "ada", WebRole.OPERATOR, frozenset())
    assert can_see_queue(agent, 3) and not can_see_queue(agent, 4) and not can_see_queue(agent, None)
    assert can_see_queue(operator, 4) and can_see_queue(operator, None)
