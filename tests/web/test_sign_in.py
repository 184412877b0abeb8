"""Signing in and out of the console in a real browser, the wrong password, and the rate limit."""

from __future__ import annotations

from collections.abc import Callable

from selenium import webdriver
from selenium.webdriver.common.by import By

from postroom.core.data.web_accounts import MAX_FAILURES
from postroom.web.auth import TOO_MANY, WRONG
from tests.web.conftest import Account, LiveServer, http_status, page_text, sign_in, submit


def test_an_operator_signs_in_lands_on_profiles_and_signs_out(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    assert browser.current_url == f"{live_server.url}/profiles"
    assert f"{operator.name} (operator)" in browser.find_element(By.ID, "signed-in-as").text
    assert http_status(browser, f"{live_server.url}/profiles")[0] == 200

    submit(browser, browser.find_element(By.ID, "sign-out"))
    assert browser.current_url == f"{live_server.url}/signin"
    assert "You are signed out." in page_text(browser)
    browser.get(f"{live_server.url}/profiles")
    assert browser.current_url.startswith(f"{live_server.url}/signin")


def test_an_agent_lands_on_the_inbox(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account]
) -> None:
    agent = make_agent(("Sales/First line",))
    sign_in(browser, live_server.url, agent.name, agent.password)
    assert browser.current_url == f"{live_server.url}/inbox"
    assert f"{agent.name} (agent)" in browser.find_element(By.ID, "signed-in-as").text


def test_a_page_asked_for_signed_out_is_shown_after_signing_in(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    browser.get(f"{live_server.url}/audit")
    assert "/signin?next=/audit" in browser.current_url
    browser.find_element(By.ID, "name").send_keys(operator.name)
    browser.find_element(By.ID, "password").send_keys(operator.password)
    submit(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.current_url == f"{live_server.url}/audit"


def test_a_wrong_password_is_refused(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, "not the password")
    assert browser.current_url == f"{live_server.url}/signin"
    assert WRONG in page_text(browser)
    assert http_status(browser, f"{live_server.url}/profiles")[0] == 302  # still signed out


def test_the_session_cookie_is_httponly_and_samesite_lax(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    cookie = browser.get_cookie("postroom_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # served without --secure-cookies
    assert browser.execute_script("return document.cookie") == ""


def test_after_too_many_failures_for_a_name_even_the_right_password_is_refused(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    for _ in range(MAX_FAILURES):
        sign_in(browser, live_server.url, operator.name, "guess")
        assert WRONG in page_text(browser)
    sign_in(browser, live_server.url, operator.name, operator.password)
    assert TOO_MANY in page_text(browser)
    assert browser.current_url == f"{live_server.url}/signin"


def test_after_too_many_failures_from_one_address_other_names_are_refused_too(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    for attempt in range(MAX_FAILURES):
        sign_in(browser, live_server.url, f"nobody-{attempt}", "guess")
        assert WRONG in page_text(browser)
    sign_in(browser, live_server.url, operator.name, operator.password)
    assert TOO_MANY in page_text(browser)


def test_a_changed_password_ends_the_open_session(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    from postroom.web import users

    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    assert browser.current_url == f"{live_server.url}/profiles"
    with live_server.app.transaction() as session:
        users.set_password(session, "test", operator.name, "a new password")
    browser.get(f"{live_server.url}/profiles")
    assert browser.current_url.startswith(f"{live_server.url}/signin")


def test_a_removed_account_is_signed_out_at_once(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account]
) -> None:
    from postroom.web import users

    agent = make_agent()
    sign_in(browser, live_server.url, agent.name, agent.password)
    assert browser.current_url == f"{live_server.url}/inbox"
    with live_server.app.transaction() as session:
        users.remove_user(session, "test", agent.name)
    browser.get(f"{live_server.url}/inbox")
    assert browser.current_url.startswith(f"{live_server.url}/signin")
