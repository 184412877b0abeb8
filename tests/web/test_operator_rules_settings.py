"""The operator's rules, configuration, plugin and worker pages in a real browser: a rule added through
the form routes held mail, a refused one shows the CLI's sentence; failure-mail addresses are checked
by the CLI's check; plugins switch off and on; the worker page reads the leases; agents get 403."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from postroom.core.contract.errors import UserError
from postroom.core.data import configuration
from postroom.core.data.models import MediaProfile, MessageStatus, RoutingRule, utcnow
from postroom.core.data.validation import RULE_PRIORITY, check_address
from tests.support.desk import Desk
from tests.support.mail import make_mail
from tests.web.conftest import Account, LiveServer, http_status, page_text, sign_in, submit

FORBIDDEN = "Your account may not open this page."
#: Every page this module's pages add, GET by URL, and a POST of each kind.
OPERATOR_PAGES = (
    "/rules",
    "/rules/1/edit",
    "/configuration",
    "/plugins",
    "/outbox",
    "/outbox/1",
    "/quarantine",
    "/quarantine/1",
    "/unrouted",
    "/held/1.eml",
    "/workers",
)
OPERATOR_POSTS = (
    "/rules",
    "/rules/1/switch",
    "/rules/1/move",
    "/rules/1/delete",
    "/configuration/failure-addresses",
    "/configuration/reload",
    "/plugins/vip/switch",
    "/outbox/send",
    "/outbox/1/cancel",
    "/quarantine/retry",
    "/unrouted/reroute",
)


def _sentence(check: Callable[[], object]) -> str:
    """The sentence the core (and so the CLI) refuses with."""
    with pytest.raises(UserError) as refused:
        check()
    return str(refused.value)


def _add_rule(browser: webdriver.Chrome, profile: str, priority: str, subject: str = "") -> None:
    Select(browser.find_element(By.ID, "rule-profile")).select_by_visible_text(profile)
    Select(browser.find_element(By.ID, "rule-campaign")).select_by_visible_text("Support")
    Select(browser.find_element(By.ID, "rule-queue")).select_by_visible_text("First line (Support)")
    for field, value in (("rule-priority", priority), ("rule-subject", subject)):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    submit(browser, browser.find_element(By.ID, "add-rule-button"))


def test_a_rule_added_through_the_form_routes_held_mail_and_a_refused_one_shows_the_clis_sentence(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    desk = Desk(live_server.app)
    name = f"rules-{uuid.uuid4().hex[:8]}"
    desk.profile(name, routed=False)
    held = desk.deliver(make_mail("Invoice 12 is wrong", sender="Ann <ann@example.org>"), name)
    assert held.status == MessageStatus.UNROUTED
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)

    browser.get(f"{live_server.url}/unrouted")
    assert "Invoice 12 is wrong" in page_text(browser)
    browser.get(f"{live_server.url}/rules")
    _add_rule(browser, name, "2000000")
    assert _sentence(lambda: RULE_PRIORITY.check(2_000_000)) in page_text(browser)
    assert browser.find_element(By.ID, "rule-priority").get_attribute("value") == "2000000"  # kept
    with live_server.app.transaction() as session:
        assert not session.scalars(
            select(RoutingRule).where(RoutingRule.media_profile_id == held.media_profile_id)
        ).all()

    _add_rule(browser, name, "5", "*invoice*")
    text = page_text(browser)
    assert "-> Support / First line." in text and f"Routed 1 held mail(s) of profile {name!r}." in text
    with live_server.app.transaction() as session:
        [rule] = session.scalars(
            select(RoutingRule).where(RoutingRule.media_profile_id == held.media_profile_id)
        )
        assert (rule.priority, rule.subject_pattern) == (5, "*invoice*")
        rule_id = rule.id
    browser.get(f"{live_server.url}/unrouted")
    assert "Invoice 12 is wrong" not in page_text(browser)

    browser.get(f"{live_server.url}/audit?action=rule.add")
    assert any(
        "rule.add" in row.text and operator.name in row.text and str(rule_id) in row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    )


def test_rules_are_edited_reordered_and_switched_through_the_list(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    desk = Desk(live_server.app)
    name = f"order-{uuid.uuid4().hex[:8]}"
    desk.profile(name, routed=False)
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/rules")
    _add_rule(browser, name, "10", "*first*")
    _add_rule(browser, name, "20", "*second*")

    def order() -> list[tuple[str | None, int, bool]]:
        with live_server.app.transaction() as session:
            profile_id = session.scalar(select(MediaProfile.id).where(MediaProfile.name == name))
            rules = session.scalars(
                select(RoutingRule)
                .where(RoutingRule.media_profile_id == profile_id)
                .order_by(RoutingRule.priority, RoutingRule.id)
            )
            return [(r.subject_pattern, r.priority, r.enabled) for r in rules]

    assert order() == [("*first*", 10, True), ("*second*", 20, True)]
    second = next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr") if "*second*" in r.text
    )
    submit(browser, second.find_element(By.CSS_SELECTOR, "button[value=up]"))
    assert order() == [("*second*", 10, True), ("*first*", 20, True)]

    first = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr") if "*first*" in r.text)
    submit(browser, first.find_element(By.LINK_TEXT, "Edit"))
    browser.find_element(By.ID, "rule-subject").clear()
    browser.find_element(By.ID, "rule-subject").send_keys("*renamed*")
    submit(browser, browser.find_element(By.ID, "save-rule"))
    renamed = next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr") if "*renamed*" in r.text
    )
    submit(browser, renamed.find_element(By.XPATH, ".//button[text()='Disable']"))
    assert order() == [("*second*", 10, True), ("*renamed*", 20, False)]


def test_failure_mail_addresses_are_checked_as_the_cli_checks_them(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/configuration")
    browser.find_element(By.ID, "failure-address").send_keys("not an address")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#add-failure-address button"))
    assert _sentence(lambda: check_address("not an address", "failure mail address")) in page_text(browser)

    address = f"daemon-{uuid.uuid4().hex[:6]}@example.org"
    browser.find_element(By.ID, "failure-address").clear()
    browser.find_element(By.ID, "failure-address").send_keys(address)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#add-failure-address button"))
    assert address in browser.find_element(By.ID, "failure-addresses").text
    with live_server.app.transaction() as session:
        assert address in configuration.failure_mail_addresses(session, 1)
    row = next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "#failure-addresses tr") if address in r.text
    )
    submit(browser, row.find_element(By.TAG_NAME, "button"))
    with live_server.app.transaction() as session:
        assert address not in configuration.failure_mail_addresses(session, 1)


def test_replies_to_one_profiles_mail_are_mapped_to_another_profile(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    desk = Desk(live_server.app)
    incoming, outgoing = (f"{role}-{uuid.uuid4().hex[:8]}" for role in ("in", "out"))
    source, target = desk.profile(incoming), desk.profile(outgoing)
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/configuration")
    Select(browser.find_element(By.NAME, "incoming")).select_by_visible_text(incoming)
    Select(browser.find_element(By.NAME, "outgoing")).select_by_visible_text(outgoing)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#add-mapping button"))
    assert f"{incoming} → {outgoing}" in browser.find_element(By.ID, "mappings").text
    with live_server.app.transaction() as session:
        assert configuration.profile_mapping(session, 1)[source] == target
    browser.get(f"{live_server.url}/audit?action=config.add")
    assert f'"incoming": "{incoming}"' in browser.find_element(By.ID, "audit").text


def test_a_plugin_is_switched_off_and_on_and_failed_plugins_say_why(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/plugins")
    assert "Plugin broken-import failed and is left out: importing it raised RuntimeError" in page_text(
        browser
    )
    try:
        submit(browser, browser.find_element(By.ID, "switch-vip"))
        assert "Plugin 'vip' is disabled" in page_text(browser)
        assert browser.find_element(By.CSS_SELECTOR, "#plugin-vip .status").text == "disabled"
        assert live_server.app.plugins.info("vip").status == "disabled"  # type: ignore[union-attr]
    finally:
        submit(browser, browser.find_element(By.ID, "switch-vip"))
    assert browser.find_element(By.CSS_SELECTOR, "#plugin-vip .status").text == "enabled"
    browser.get(f"{live_server.url}/audit?actor={operator.name}")
    actions = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    assert (
        sum("plugin.disable" in a for a in actions) == 1 and sum("plugin.enable" in a for a in actions) == 1
    )


def test_the_worker_page_shows_who_holds_a_profiles_lease_and_its_last_error(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    name = f"leased-{uuid.uuid4().hex[:8]}"
    profile_id = Desk(live_server.app).profile(
        name,
        fetch_protocol="imap",
        incoming_allowed=True,
        incoming_host="127.0.0.1",
        username="u",
        password="p",
    )
    with live_server.app.transaction() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        profile.lease_owner, profile.lease_expires_at = "mailhost:4242", utcnow() + timedelta(minutes=5)
        profile.status, profile.last_error = "error", "The server refused the login."
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/workers")
    assert "mailhost:4242" in browser.find_element(By.ID, "workers").text
    row = browser.find_element(By.ID, f"worker-profile-{name}").text
    assert "mailhost:4242 until" in row and "The server refused the login." in row and "on" in row


def test_an_agent_gets_403_on_every_page_by_url_and_every_form(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account]
) -> None:
    agent = make_agent()
    sign_in(browser, live_server.url, agent.name, agent.password)
    for path in OPERATOR_PAGES:
        browser.get(f"{live_server.url}{path}")
        assert FORBIDDEN in page_text(browser), path
        assert http_status(browser, f"{live_server.url}{path}")[0] == 403, path
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    for path in OPERATOR_POSTS:
        status, _ = http_status(
            browser,
            f"{live_server.url}{path}",
            data=f"csrf_token={token}".encode(),
            headers={"Origin": live_server.url, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 403, path
