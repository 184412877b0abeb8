"""An agent reaches only their queues' tickets, by URL as well as by link: another queue's ticket, its
attachments and every change to it answer 403 (issue 13, "Must show" 3); operator pages too."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from selenium import webdriver
from sqlalchemy import select

from postroom.core.data import tickets
from postroom.core.data.models import Message, SMessageSendInfo
from tests.servers.smtp import SmtpServers
from tests.web.agent_desk import CC, AgentDesk, csrf_token
from tests.web.conftest import Account, LiveServer, http_status, page_text, sign_in, submit

FORBIDDEN = "Your account may not open this page."


@pytest.fixture
def desks(live_server: LiveServer, smtp_servers: SmtpServers) -> tuple[AgentDesk, AgentDesk]:
    return AgentDesk(live_server.app, smtp_servers.plain), AgentDesk(live_server.app, smtp_servers.plain)


def test_another_queues_ticket_and_attachment_are_403_by_url(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_agent: Callable[..., Account],
    desks: tuple[AgentDesk, AgentDesk],
) -> None:
    mine, theirs = desks
    own = mine.mail("My own case", attachments=(("mine.txt", "text/plain", b"mine"),))
    other = theirs.mail("Not yours", attachments=(("secret.txt", "text/plain", b"secret"),))
    agent = make_agent((mine.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    base = live_server.url
    assert http_status(browser, f"{base}/tickets/{own.ticket_id}")[0] == 200  # the control
    assert http_status(browser, f"{base}/messages/{own.message_pk}/attachments/0") == (200, "mine")
    browser.get(f"{base}/tickets/{other.ticket_id}")
    assert FORBIDDEN in page_text(browser) and "Not yours" not in page_text(browser)
    assert http_status(browser, f"{base}/tickets/{other.ticket_id}")[0] == 403
    status, body = http_status(browser, f"{base}/messages/{other.message_pk}/attachments/0")
    assert status == 403 and "secret" not in body
    assert http_status(browser, f"{base}/tickets/999999999")[0] == 404
    assert http_status(browser, f"{base}/messages/{own.message_pk}/attachments/5")[0] == 404
    for path in ("/profiles", "/audit"):  # operator pages
        assert http_status(browser, f"{base}{path}")[0] == 403


def test_replies_merges_splits_and_closes_of_another_queues_ticket_are_403(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_agent: Callable[..., Account],
    desks: tuple[AgentDesk, AgentDesk],
) -> None:
    """Posted with a valid token from the agent's own page, from the console's own origin: only the
    queue check stands in the way."""
    mine, theirs = desks
    own = mine.mail("Mine to merge")
    other = theirs.mail("Theirs to keep")
    agent = make_agent((mine.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    base = live_server.url
    browser.get(f"{base}/tickets/{own.ticket_id}")
    token = csrf_token(browser)
    posts = {
        "reply": "body=Hello&action=send",
        "merge": f"into={own.ticket_id}",
        "split": f"message={other.message_pk}",
        "close": "",
    }
    for action, fields in posts.items():
        data = f"csrf_token={token}&{fields}".encode()
        status, _ = http_status(
            browser,
            f"{base}/tickets/{other.ticket_id}/{action}",
            data=data,
            headers={"Origin": base, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 403, (action, status)
    # Merging one's own ticket into another queue's is refused as if that ticket did not exist.
    browser.get(f"{base}/tickets/{own.ticket_id}")
    browser.find_element("id", "merge-into").send_keys(str(other.ticket_id))
    submit(browser, browser.find_element("id", "merge"))
    assert f"There is no ticket {other.ticket_id}." in page_text(browser)
    with live_server.app.transaction() as session:
        assert tickets.get_ticket(session, CC, other.ticket_id).state == "open"
        assert tickets.get_ticket(session, CC, own.ticket_id).state == "open"
        assert session.scalars(select(Message.id).where(Message.ticket_id == other.ticket_id)).all() == [
            other.message_pk
        ]
        assert not session.scalars(
            select(SMessageSendInfo).where(SMessageSendInfo.ticket_id == other.ticket_id)
        ).all()


def test_an_operator_opens_any_queues_ticket(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
    desks: tuple[AgentDesk, AgentDesk],
) -> None:
    other = desks[1].mail("Any queue", attachments=(("a.txt", "text/plain", b"any"),))
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    assert http_status(browser, f"{live_server.url}/tickets/{other.ticket_id}")[0] == 200
    assert http_status(browser, f"{live_server.url}/messages/{other.message_pk}/attachments/0") == (
        200,
        "any",
    )
