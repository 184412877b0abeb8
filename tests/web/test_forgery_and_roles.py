"""Cross-site forms are refused, and an agent's session cannot reach operator pages (by URL or link)."""

from __future__ import annotations

import re
from collections.abc import Callable

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from postroom.web.app import CROSS_SITE, NO_TOKEN
from tests.web.conftest import Account, LiveServer, OtherSite, http_status, page_text, sign_in

FORBIDDEN = "Your account may not open this page."


def test_a_form_posted_from_another_origin_is_refused(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    other_site: OtherSite,
    make_operator: Callable[..., Account],
) -> None:
    """A page on another port posts, as soon as it loads, the sign-out form without the token: the
    browser sends the session cookie (same site, SameSite=Lax lets it), the console refuses the post."""
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    other_site.pages["/forged"] = (
        f'<form id="f" method="post" action="{live_server.url}/signout"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )
    browser.get(f"{other_site.url}/forged")
    WebDriverWait(browser, 30).until(lambda driver: driver.current_url.startswith(live_server.url))
    assert CROSS_SITE in page_text(browser)
    browser.get(f"{live_server.url}/profiles")
    assert browser.current_url == f"{live_server.url}/profiles"  # still signed in: the post did nothing


def test_a_post_without_the_token_is_refused_even_from_no_origin(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    """A client that sends no Origin or Referer still needs the form's token."""
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    status, body = http_status(browser, f"{live_server.url}/signout", data=b"")
    assert status == 400
    assert NO_TOKEN.replace("'", "&#39;") in body
    assert http_status(browser, f"{live_server.url}/profiles")[0] == 200


def test_a_post_with_the_token_from_this_origin_is_taken(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    """The check that refuses the two above lets the console's own form through (the control)."""
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    found = re.search(r'name="csrf_token" value="([^"]+)"', browser.page_source)
    assert found
    status, _ = http_status(
        browser,
        f"{live_server.url}/signout",
        data=f"csrf_token={found.group(1)}".encode(),
        headers={"Origin": live_server.url},
    )
    assert status == 302  # signed out and sent to the sign-in page (the refusals above are 403 and 400)
    # The sign-out ended the session on the server: the browser's copy of the cookie is dead too.
    assert http_status(browser, f"{live_server.url}/profiles")[0] == 302


def test_an_agent_gets_403_from_operator_pages_by_url(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account]
) -> None:
    agent = make_agent(("Sales/First line",))
    sign_in(browser, live_server.url, agent.name, agent.password)
    for path in ("/profiles", "/audit"):
        browser.get(f"{live_server.url}{path}")
        assert FORBIDDEN in page_text(browser)
        assert http_status(browser, f"{live_server.url}{path}")[0] == 403


def test_an_agent_sees_no_link_to_operator_pages(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account]
) -> None:
    agent = make_agent()
    sign_in(browser, live_server.url, agent.name, agent.password)
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")}
    assert links == {f"{live_server.url}/inbox"}


def test_the_audit_page_shows_account_changes_to_an_operator(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/audit?target=&action=web-user.add")
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    assert any("web-user.add" in row and operator.name in row and '"role": "operator"' in row for row in rows)
