"""The media-profile pages in a real browser: add through the form (and the 53/52 refusal, live and from
the server), the fields fixed after creation, delete with its confirmation, and an agent kept out;
and the page refusing exactly what ``postroom profile add`` refuses, with the same sentence."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import insert, select

from postroom.cli import cli
from postroom.core.data import directory
from postroom.core.data.models import AuditLog, MediaProfile, queue_media_profile
from tests.web.conftest import Account, LiveServer, http_status, page_text, sign_in, submit
from tests.web.profile_helpers import csrf_token, form_error, make_profile, stored, unique

TOO_LONG = "You have exceeded the maximum character limit for the send-from name (53/52)."


def test_an_operator_adds_a_profile_through_the_form_and_a_53_character_name_is_refused(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    submit(browser, browser.find_element(By.ID, "add-profile"))
    name = unique()
    browser.find_element(By.ID, "name").send_keys(name)
    sender = browser.find_element(By.ID, "send_from_name")
    sender.send_keys("S" * 52)
    counter = browser.find_element(By.ID, "send-from-count")
    WebDriverWait(browser, 30).until(lambda _: counter.text == "52/52")
    sender.send_keys("S")  # the 53rd character: the counter says what the server will say
    WebDriverWait(browser, 30).until(lambda _: counter.text == TOO_LONG)
    Select(browser.find_element(By.ID, "fetch_protocol")).select_by_visible_text("imap")
    browser.find_element(By.ID, "incoming_host").send_keys("mail.example.com")
    browser.find_element(By.ID, "username").send_keys("support")
    browser.find_element(By.ID, "password").send_keys("the-mailbox-password")
    submit(browser, browser.find_element(By.ID, "save"))
    assert browser.find_element(By.ID, "form-error").text == TOO_LONG  # the server's refusal, same sentence
    with live_server.app.transaction() as session:
        assert session.scalar(select(MediaProfile.id).where(MediaProfile.name == name)) is None

    sender = browser.find_element(By.ID, "send_from_name")
    sender.clear()
    sender.send_keys("ACME Support")
    browser.find_element(By.ID, "password").send_keys("the-mailbox-password")  # write-only: typed again
    submit(browser, browser.find_element(By.ID, "save"))
    assert f"Created profile {name!r}." in page_text(browser)
    profile = stored(live_server, name)
    assert (profile.send_from_name, profile.fetch_protocol, profile.incoming_host) == (
        "ACME Support", "imap", "mail.example.com"
    )
    assert profile.password_encrypted is not None
    assert "the-mailbox-password" not in browser.page_source
    with live_server.app.transaction() as session:
        entry = session.scalars(select(AuditLog).where(AuditLog.target == name)).one()
        assert (entry.actor, entry.action) == (operator.name, "profile.add")
        assert entry.detail["password"] == "(changed)"
        assert "the-mailbox-password" not in json.dumps(entry.detail)
    browser.get(f"{live_server.url}/profiles")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-profile="{name}"]').text
    assert "enabled" in row and "imap" in row and "never" in row


def test_fetch_protocol_is_read_only_on_edit_and_a_forged_post_changing_it_is_refused(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    name = make_profile(live_server)
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}")
    form = browser.find_element(By.CSS_SELECTOR, "form.profile")
    for fixed in ("fetch_protocol", "send_protocol", "incoming_folder", "outgoing_folder"):
        assert form.find_elements(By.NAME, fixed) == []  # no field posts it
    assert browser.find_element(By.ID, "fetch_protocol").tag_name == "output"
    assert browser.find_element(By.ID, "fetch_protocol").text == "imap"
    assert browser.find_element(By.ID, "password").get_attribute("value") == ""  # never rendered
    # The forger adds the field the page does not offer, and posts the real form with its token.
    browser.execute_script(
        "var i = document.createElement('input'); i.type = 'hidden'; i.name = 'fetch_protocol';"
        "i.value = 'pop3'; arguments[0].appendChild(i);",
        form,
    )
    submit(browser, browser.find_element(By.ID, "save"))
    assert browser.find_element(By.ID, "form-error").text == (
        f"The fetch protocol of profile {name!r} cannot be changed after creation; create a new profile instead."
    )
    assert stored(live_server, name).fetch_protocol == "imap"
    # An ordinary edit on the same page is taken, and the password left empty is kept.
    before = stored(live_server, name).password_encrypted
    browser.find_element(By.ID, "subject_prefix").send_keys("[ACME]")
    submit(browser, browser.find_element(By.ID, "save"))
    assert f"Updated profile {name!r}." in page_text(browser)
    after = stored(live_server, name)
    assert after.subject_prefix == "[ACME]" and after.password_encrypted == before
    with live_server.app.transaction() as session:
        entries = session.scalars(select(AuditLog).where(AuditLog.target == name)).all()
    assert [(e.actor, e.action, e.detail) for e in entries] == [
        (operator.name, "profile.modify", {"subject_prefix": "[ACME]"})  # the refused post left no entry
    ]


def test_delete_asks_first_says_what_it_detaches_and_then_deletes(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    name = make_profile(live_server)
    with live_server.app.transaction() as session:
        campaign = directory.add_campaign(session, directory.DEFAULT_CONTACT_CENTER_ID, unique("campaign"))
        queue = directory.add_queue(session, campaign, "first line")
        session.flush()
        profile_id = session.scalars(select(MediaProfile.id).where(MediaProfile.name == name)).one()
        session.execute(insert(queue_media_profile).values(queue_id=queue.id, media_profile_id=profile_id))
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/{name}")
    browser.find_element(By.LINK_TEXT, "Delete").click()
    WebDriverWait(browser, 30).until(lambda driver: driver.find_elements(By.ID, "detaches"))
    said = browser.find_element(By.ID, "detaches").text
    assert "This cannot be undone" in said and "1 queue(s)" in said and "0 campaign(s)" in said
    assert stored(live_server, name).deleted_at is None  # the page asked; nothing happened yet
    submit(browser, browser.find_element(By.ID, "confirm-delete"))
    assert f"Deleted profile {name!r}." in page_text(browser)
    assert stored(live_server, name).deleted_at is not None
    with live_server.app.transaction() as session:
        assert session.execute(select(queue_media_profile).where(queue_media_profile.c.media_profile_id == profile_id)).all() == []
        entry = session.scalars(select(AuditLog).where(AuditLog.target == name, AuditLog.action == "profile.delete")).one()
        assert entry.actor == operator.name


PAGES = ["", "/resolvers", "/retry", "/signature", "/oauth", "/delete"]


def test_an_agent_gets_403_on_every_profile_page_by_url(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_agent: Callable[..., Account],
) -> None:
    name = make_profile(live_server)
    agent = make_agent()
    sign_in(browser, live_server.url, agent.name, agent.password)
    agent_token = csrf_token(browser.page_source)
    urls = ["/profiles", "/profiles/new", "/retry", *[f"/profiles/{name}{page}" for page in PAGES]]
    for url in urls:
        status, body = http_status(browser, f"{live_server.url}{url}")
        assert status == 403 and "Your account may not open this page." in body, url
        if url != "/profiles":  # the list is the one page with no form
            data = urllib.parse.urlencode({"csrf_token": agent_token, "action": "remove", "resolver": "customer"})
            assert http_status(browser, f"{live_server.url}{url}", data=data.encode())[0] == 403, url
    assert stored(live_server, name).deleted_at is None


REFUSED = [
    pytest.param({"send_from_name": "N" * 53}, id="53-character send-from name"),
    pytest.param({"send_from_address": "not an address"}, id="bad address"),
    pytest.param({"fetch_protocol": "imap"}, id="imap without a host"),
    pytest.param({"fetch_protocol": "carrier-pigeon"}, id="unknown protocol"),
    pytest.param({"outgoing_port": "70000", "send_protocol": "smtp", "outgoing_host": "h"}, id="port out of range"),
    pytest.param({"outgoing_login": "password", "outgoing_username": "u"}, id="password login without a password"),
    pytest.param({"fetch_interval": "soon"}, id="not a number"),
]


@pytest.mark.parametrize("fields", REFUSED)
def test_the_form_refuses_what_profile_add_refuses_with_the_same_sentence(
    fields: dict[str, str],
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/profiles/new")
    name = unique()
    data = urllib.parse.urlencode({"csrf_token": csrf_token(browser.page_source), "name": name, **fields}).encode()
    status, page = http_status(browser, f"{live_server.url}/profiles/new", data=data)
    assert status == 400, page

    options = [part for key, value in fields.items() for part in (f"--{key.replace('_', '-')}", value)]
    url = live_server.app.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["profile", "add", name, "--database-url", url, *options])
    assert result.exit_code != 0, result.output
    errors = [line.removeprefix("Error: ") for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [form_error(page)], result.stderr
    with live_server.app.transaction() as session:
        assert session.scalar(select(MediaProfile.id).where(MediaProfile.name == name)) is None
