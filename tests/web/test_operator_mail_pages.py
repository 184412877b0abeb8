"""The operator's outbox and quarantine pages in a real browser, with real failures: replies refused by a
real aiosmtpd server (tests/servers/smtp.py) found by error category, retried now and cancelled; a mail
the ``mail-breaker`` test plugin broke, downloaded raw, and retried once the plugin is switched off."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from postroom.core.contract.retry import ErrorCategory
from postroom.core.data.models import FailedMessageSendInfo, Message, MessageStatus, SMessageSendInfo
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.manual import CANCELLED
from tests.servers.smtp import NO_SUCH_USER, SmtpScript, SmtpServers
from tests.support.desk import Desk
from tests.support.mail import make_mail
from tests.web.conftest import Account, LiveServer, http_status, page_text, sign_in, submit

MAILBOX_FULL = "452 4.2.2 The mailbox is full"
BROKEN_SUBJECT = "Order 88 [break-plugin]"


def _reply_refused_with(
    desk: Desk, profile: str, profile_id: int, script: SmtpScript, reply: str
) -> tuple[int, str]:
    """A customer's mail to the profile alone and the reply to them queued; the server refuses the
    customer with ``reply``."""
    customer = f"c-{uuid.uuid4().hex[:8]}@example.org"
    ticket_id = desk.ticket(profile_id, sender=f"Cee <{customer}>", to=f"{profile}@postroom.test")
    script.refuse_recipient(customer, reply)
    return queue_reply(desk.app, 1, ticket_id, "Your answer.").send_info_id, customer


def _state(live_server: LiveServer, outbox_id: int) -> tuple[str, str | None]:
    with live_server.app.transaction() as session:
        row = session.get(SMessageSendInfo, outbox_id)
        assert row is not None
        return row.state, row.last_error


def test_a_refused_send_shows_in_the_outbox_by_category_and_is_retried_now_or_cancelled(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
    smtp_servers: SmtpServers,
    smtp_script: SmtpScript,
) -> None:
    desk = Desk(live_server.app)
    profile = f"out-{uuid.uuid4().hex[:8]}"
    profile_id = desk.smtp_profile(profile, smtp_servers.plain)
    unknown_id, unknown = _reply_refused_with(desk, profile, profile_id, smtp_script, NO_SUCH_USER)
    full_id, full = _reply_refused_with(desk, profile, profile_id, smtp_script, MAILBOX_FULL)
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)

    browser.get(f"{live_server.url}/outbox")
    submit(browser, browser.find_element(By.ID, "send-due"))  # 'postroom send', against the real server
    assert "failed 1" in page_text(browser) and "retry scheduled 1" in page_text(browser)
    assert smtp_servers.received() == []

    Select(browser.find_element(By.ID, "filter-profile")).select_by_visible_text(profile)
    Select(browser.find_element(By.ID, "filter-category")).select_by_visible_text(
        ErrorCategory.ADDRESSING.value
    )
    submit(browser, browser.find_element(By.ID, "filter-button"))
    failures = browser.find_element(By.ID, "failures").text
    assert unknown in failures and "5.1.1" in failures and full not in failures
    replies = browser.find_element(By.ID, "replies").text
    assert unknown in replies and full not in replies

    Select(browser.find_element(By.ID, "filter-category")).select_by_visible_text(ErrorCategory.MAILBOX.value)
    submit(browser, browser.find_element(By.ID, "filter-button"))
    assert full in browser.find_element(By.ID, "failures").text
    assert unknown not in browser.find_element(By.ID, "failures").text

    submit(browser, browser.find_element(By.LINK_TEXT, str(full_id)))
    assert "retry-scheduled" in browser.find_element(By.ID, "reply").text
    assert "The mailbox is full" in browser.find_element(By.ID, "failures").text
    submit(browser, browser.find_element(By.ID, "retry-now"))
    assert f"Reply {full_id} is due now" in page_text(browser)
    submit(browser, browser.find_element(By.ID, "cancel-reply"))
    assert f"Reply {full_id} is cancelled." in page_text(browser)
    assert _state(live_server, full_id) == ("failed", CANCELLED)
    assert not browser.find_elements(By.ID, "cancel-reply")  # no action on a reply that waits no more

    with live_server.app.transaction() as session:  # the day the attempt was made (UTC)
        made = session.scalar(
            select(FailedMessageSendInfo.created_at).where(FailedMessageSendInfo.send_info_id == unknown_id)
        )
    assert made is not None
    today = made.date()
    browser.get(f"{live_server.url}/outbox?profile={profile}&since={today}&until={today}")
    assert unknown in browser.find_element(By.ID, "failures").text
    browser.get(f"{live_server.url}/outbox?profile={profile}&since={today + timedelta(days=1)}")
    assert "No reply matches." in page_text(browser) and "No failed attempt matches." in page_text(browser)
    browser.get(f"{live_server.url}/outbox?since=yesterday")
    assert "The from date must be YYYY-MM-DD, not 'yesterday'." in page_text(browser)

    browser.get(f"{live_server.url}/outbox/{unknown_id}")
    assert not browser.find_elements(By.ID, "retry-now")
    browser.get(f"{live_server.url}/audit?actor={operator.name}")
    actions = browser.find_element(By.ID, "audit").text
    assert "outbox.send" in actions and "outbox.retry-now" in actions and "outbox.cancel" in actions


@pytest.fixture
def mail_breaker_back_on(live_server: LiveServer) -> Iterator[None]:
    """Whatever a test does to the ``mail-breaker`` plugin, it is switched on again after it."""
    yield
    live_server.app.set_plugin_enabled("mail-breaker", True)


def test_a_quarantined_mail_is_downloaded_and_retried_once_its_plugin_is_switched_off(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
    mail_breaker_back_on: None,
) -> None:
    desk = Desk(live_server.app)
    profile = f"in-{uuid.uuid4().hex[:8]}"
    desk.profile(profile)
    raw = make_mail(BROKEN_SUBJECT, sender="Eve <eve@example.org>")
    held = desk.deliver(raw, profile)
    assert held.status == MessageStatus.QUARANTINED
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)

    browser.get(f"{live_server.url}/quarantine")
    row = browser.find_element(By.ID, f"held-{held.id}").text
    assert BROKEN_SUBJECT in row and "Plugin 'mail-breaker' failed on this mail" in row
    status, body = http_status(browser, f"{live_server.url}/held/{held.id}.eml")
    assert status == 200 and body.replace("\r\n", "\n") == raw.decode().replace("\r\n", "\n")

    submit(browser, browser.find_element(By.ID, f"retry-{held.id}"))  # the plugin still breaks it
    assert f"Message {held.id}: quarantined (Plugin 'mail-breaker' failed" in page_text(browser)

    browser.get(f"{live_server.url}/plugins")
    submit(browser, browser.find_element(By.ID, "switch-mail-breaker"))
    browser.get(f"{live_server.url}/quarantine")
    submit(browser, browser.find_element(By.ID, f"retry-{held.id}"))
    with live_server.app.transaction() as session:
        message = session.scalar(select(Message).where(Message.id == held.id))
        assert message is not None and message.status == MessageStatus.TICKETED
        ticket_id = message.ticket_id
    assert f"Message {held.id}: ticketed on ticket {ticket_id}" in page_text(browser)
    assert not browser.find_elements(By.ID, f"held-{held.id}")

    browser.get(f"{live_server.url}/quarantine/{held.id}")  # no longer in quarantine: the core's sentence
    assert f"Message {held.id} is not in quarantine (it is ticketed); nothing to do." in page_text(browser)
    assert http_status(browser, f"{live_server.url}/held/{held.id}.eml")[0] == 404
