"""The agent's inbox in a real browser: their queues' tickets only, newest activity first, unread per
account, search by customer, subject and case id, pages."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from postroom.core.data import tickets, web_accounts
from postroom.core.data.inbox import PAGE_SIZE, search_tickets
from postroom.core.data.models import Campaign, Queue
from tests.servers.smtp import SmtpServers
from tests.web.agent_desk import CC, AgentDesk, new_customer
from tests.web.conftest import Account, LiveServer, page_text, sign_in, submit


@pytest.fixture
def desk(live_server: LiveServer, smtp_servers: SmtpServers) -> AgentDesk:
    return AgentDesk(live_server.app, smtp_servers.plain)


@pytest.fixture
def other_desk(live_server: LiveServer, smtp_servers: SmtpServers) -> AgentDesk:
    return AgentDesk(live_server.app, smtp_servers.plain)


def rows(driver: webdriver.Chrome) -> list[tuple[str, str]]:
    """The inbox's rows as (ticket id, CSS class: read or unread), top to bottom."""
    return [
        (str(row.get_attribute("data-ticket")), str(row.get_attribute("class")))
        for row in driver.find_elements(By.CSS_SELECTOR, "#tickets tbody tr")
    ]


def search(driver: webdriver.Chrome, base: str, text: str, state: str = "open") -> list[str]:
    driver.get(f"{base}/inbox?state={state}")
    box = driver.find_element(By.ID, "q")
    box.send_keys(text)
    submit(driver, driver.find_element(By.ID, "search"))
    return [ticket for ticket, _ in rows(driver)]


def test_an_agent_sees_their_queues_tickets_newest_first_and_not_another_queues(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_agent: Callable[..., Account],
    desk: AgentDesk,
    other_desk: AgentDesk,
) -> None:
    older = desk.mail("Kettle still missing")
    newer = desk.mail("Toaster sparks")
    hidden = other_desk.mail("Another queue's secret")
    agent = make_agent((desk.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    assert browser.current_url == f"{live_server.url}/inbox"  # an agent lands on the inbox
    assert [t for t, _ in rows(browser)] == [str(newer.ticket_id), str(older.ticket_id)]
    text = page_text(browser)
    assert "Toaster sparks" in text and "Kettle still missing" in text
    assert "Another queue's secret" not in text and str(hidden.ticket_id) not in {t for t, _ in rows(browser)}


def test_unread_is_per_account_and_comes_back_with_new_mail(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_agent: Callable[..., Account],
    desk: AgentDesk,
) -> None:
    sender = new_customer("Uma Unread")
    first = desk.mail("Where is my order?", sender=sender)
    agent, colleague = make_agent((desk.spec,)), make_agent((desk.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    assert rows(browser) == [(str(first.ticket_id), "unread")]
    submit(browser, browser.find_element(By.LINK_TEXT, "Where is my order?"))
    assert "Where is my order?" in browser.title
    browser.get(f"{live_server.url}/inbox")
    assert rows(browser) == [(str(first.ticket_id), "read")]
    with live_server.app.transaction() as session:  # the colleague has not opened it: still unread for her
        colleague_id = web_accounts.find_user(session, colleague.name).id  # type: ignore[union-attr]
        page = search_tickets(session, CC, queue_ids=[desk.queue_id], reader_id=colleague_id)
        assert [(d["id"], d["unread"]) for d in page.tickets] == [(first.ticket_id, True)]
    again = desk.mail("Re: Where is my order?", sender=sender, body="Any news?")
    assert again.ticket_id == first.ticket_id  # the customer's open ticket took it
    browser.get(f"{live_server.url}/inbox")
    assert rows(browser) == [(str(first.ticket_id), "unread")]


def test_search_by_customer_subject_and_case_id(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_agent: Callable[..., Account],
    desk: AgentDesk,
    other_desk: AgentDesk,
) -> None:
    tag = uuid.uuid4().hex[:6]
    by_name = desk.mail("Question about delivery", sender=f"Quentin Quux{tag} <q-{tag}@example.org>")
    by_subject = desk.mail(f"Invoice {tag} is wrong")
    other = desk.mail("Something else entirely")
    elsewhere = other_desk.mail(f"Invoice {tag} is wrong")  # same words, another queue: never found
    agent = make_agent((desk.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    base = live_server.url
    assert search(browser, base, f"quux{tag}") == [str(by_name.ticket_id)]  # customer's name, any case
    assert search(browser, base, f"q-{tag}@example") == [str(by_name.ticket_id)]  # customer's address
    assert search(browser, base, f"Invoice {tag}") == [str(by_subject.ticket_id)]
    assert str(elsewhere.ticket_id) not in search(browser, base, tag)
    with live_server.app.transaction() as session:
        token = tickets.get_ticket(session, CC, other.ticket_id).case_token
    assert token is not None
    assert search(browser, base, token) == [str(other.ticket_id)]  # "[#PR-7]"
    assert search(browser, base, token.strip("[]#")) == [str(other.ticket_id)]  # "PR-7"
    assert str(other.ticket_id) in search(browser, base, f"#{other.ticket_id}")  # the ticket's number
    assert search(browser, base, f"nothing-{tag}") == []
    assert "No open ticket matches" in page_text(browser)


def test_the_inbox_comes_in_pages_of_fifty(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account], desk: AgentDesk
) -> None:
    with live_server.app.transaction() as session:
        queue = session.get(Queue, desk.queue_id)
        assert queue is not None
        campaign = session.get(Campaign, queue.campaign_id)
        assert campaign is not None
        made = [
            tickets.create_ticket(
                session,
                contact_center_id=CC,
                campaign_id=campaign.id,
                queue_id=queue.id,
                customer_id=None,
                profile=None,
                subject=f"Case number {n}",
            ).id
            for n in range(PAGE_SIZE + 1)
        ]
    agent = make_agent((desk.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    first_page = [int(t) for t, _ in rows(browser)]
    assert first_page == sorted(made, reverse=True)[:PAGE_SIZE]
    assert "Page 1 of 2 (51 tickets)" in page_text(browser)
    submit(browser, browser.find_element(By.LINK_TEXT, "Older →"))
    assert [int(t) for t, _ in rows(browser)] == [made[0]]
    assert "Page 2 of 2" in page_text(browser)


def test_an_operator_sees_every_queues_tickets(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_operator: Callable[..., Account],
    desk: AgentDesk,
    other_desk: AgentDesk,
) -> None:
    tag = uuid.uuid4().hex[:6]
    one, two = desk.mail(f"First queue's case {tag}"), other_desk.mail(f"Second queue's case {tag}")
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")}
    assert f"{live_server.url}/inbox" in links
    assert search(browser, live_server.url, tag) == [str(two.ticket_id), str(one.ticket_id)]
