"""A ticket's conversation in a real browser: attachments download, an answer with an attachment is
previewed (prefix, case token, signature), queued, and reaches the real aiosmtpd server; merge, split, close."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlalchemy import select

from postroom.core.data import audit, directory, tickets
from postroom.core.data.models import Message, SMessageSendInfo
from postroom.core.outbound.outbox import Outbox
from tests.servers.smtp import SmtpScript, SmtpServers
from tests.web.agent_desk import CC, AgentDesk, download, new_customer
from tests.web.conftest import Account, LiveServer, page_text, sign_in, submit

#: A tiny PNG (the signature and a few bytes; the console never looks inside).
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)


@pytest.fixture
def desk(live_server: LiveServer, smtp_servers: SmtpServers) -> AgentDesk:
    return AgentDesk(live_server.app, smtp_servers.plain)


def open_ticket(driver: webdriver.Chrome, base: str, ticket_id: int) -> None:
    driver.get(f"{base}/tickets/{ticket_id}")


def test_an_agent_answers_with_an_attachment_and_the_reply_reaches_the_smtp_server(
    browser: webdriver.Chrome,
    live_server: LiveServer,
    make_agent: Callable[..., Account],
    desk: AgentDesk,
    smtp_servers: SmtpServers,
    smtp_script: SmtpScript,
    tmp_path: Path,
) -> None:
    customer = new_customer("Carla Customer")
    asked = desk.mail(
        "Broken kettle", sender=customer, attachments=(("photo of the kettle.png", "image/png", PNG),)
    )
    desk.mail("Out of office", sender=customer, headers={"Auto-Submitted": "auto-replied"})
    agent = make_agent((desk.spec,))
    with live_server.app.transaction() as session:  # the directory's agent of that name signs the reply
        directory.add_agent(session, CC, agent.name)
        token = tickets.get_ticket(session, CC, asked.ticket_id).case_token
    sign_in(browser, live_server.url, agent.name, agent.password)
    submit(browser, browser.find_element(By.LINK_TEXT, "Broken kettle"))
    conversation = browser.find_element(By.ID, "conversation").text
    assert "my parcel has not arrived" in conversation
    auto = browser.find_elements(By.CSS_SELECTOR, "article.auto-reply .badge.auto")
    assert [badge.text for badge in auto] == ["auto-reply"]

    link = browser.find_element(By.LINK_TEXT, "photo of the kettle.png")
    status, headers, data = download(browser, str(link.get_attribute("href")))
    assert status == 200 and data == PNG
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == 'attachment; filename="photo of the kettle.png"'

    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4 the invoice")
    browser.find_element(By.ID, "body").send_keys("Dear Carla,\nthe new kettle is on its way.")
    browser.find_element(By.ID, "attachment").send_keys(str(invoice))
    submit(browser, browser.find_element(By.ID, "preview-reply"))
    assert browser.find_element(By.ID, "preview-subject").text == f"Re: [ACME] Broken kettle {token}"
    preview = browser.find_element(By.ID, "preview-text").text
    assert preview.startswith("Dear Carla,\nthe new kettle is on its way.")
    assert f"Kind regards, {agent.name}" in preview  # the profile's signature, its placeholder filled
    assert "invoice.pdf (20 bytes)" in browser.find_element(By.ID, "preview").text
    with live_server.app.transaction() as session:  # a preview queues nothing
        assert not session.scalars(
            select(SMessageSendInfo).where(SMessageSendInfo.ticket_id == asked.ticket_id)
        ).all()

    submit(browser, browser.find_element(By.ID, "send-reply"))  # the file chosen for the preview goes along
    assert "Queued reply" in page_text(browser)
    with live_server.app.transaction() as session:  # committed before the page came back
        queued = session.scalars(
            select(SMessageSendInfo).where(SMessageSendInfo.ticket_id == asked.ticket_id)
        ).all()
        assert [row.state for row in queued] == ["queued"]
    Outbox(live_server.app).send_due()
    mails = [m for m in smtp_servers.received("plain") if token and token in m.message()["Subject"]]
    assert len(mails) == 1
    mail = mails[0].message()
    assert mail["Subject"] == f"Re: [ACME] Broken kettle {token}"
    assert mails[0].recipients == (customer.split("<")[1].rstrip(">"),)
    text = mail.get_body(("plain",))
    assert text is not None and "the new kettle is on its way" in text.get_content()
    assert f"Kind regards, {agent.name}" in text.get_content()
    attached = [(part.get_filename(), part.get_content()) for part in mail.iter_attachments()]
    assert attached == [("invoice.pdf", b"%PDF-1.4 the invoice")]

    open_ticket(browser, live_server.url, asked.ticket_id)
    delivery = browser.find_element(By.CSS_SELECTOR, "article.outbound .delivery").text
    assert delivery.startswith("Delivery: sent")
    sent_link = browser.find_element(By.CSS_SELECTOR, "article.outbound .attachments a")
    status, headers, data = download(browser, str(sent_link.get_attribute("href")))
    assert (status, headers["Content-Type"], data) == (200, "application/pdf", b"%PDF-1.4 the invoice")


def test_a_refused_reply_shows_the_clis_sentence_and_keeps_the_text(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account], desk: AgentDesk
) -> None:
    asked = desk.mail("Empty answer")
    agent = make_agent((desk.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    open_ticket(browser, live_server.url, asked.ticket_id)
    browser.find_element(By.ID, "body").send_keys("   ")
    browser.execute_script("document.getElementById('body').removeAttribute('required')")
    submit(browser, browser.find_element(By.ID, "send-reply"))
    assert "A reply needs a body." in page_text(browser)  # compose_reply's sentence, as the CLI prints it


def test_merge_split_and_close(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account], desk: AgentDesk
) -> None:
    bob = new_customer("Bob")
    source = desk.mail("Parcel damaged")
    target = desk.mail("Refund please", sender=bob)
    later = desk.mail("Re: Refund please", sender=bob, body="And the receipt is attached.")
    assert later.ticket_id == target.ticket_id
    agent = make_agent((desk.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)

    open_ticket(browser, live_server.url, source.ticket_id)
    browser.find_element(By.ID, "merge-into").send_keys(str(source.ticket_id))
    submit(browser, browser.find_element(By.ID, "merge"))
    assert "A ticket cannot be merged into itself." in page_text(browser)

    browser.find_element(By.ID, "merge-into").send_keys(str(target.ticket_id))
    submit(browser, browser.find_element(By.ID, "merge"))
    assert browser.current_url == f"{live_server.url}/tickets/{target.ticket_id}"
    assert f"Merged ticket {source.ticket_id} into ticket {target.ticket_id}." in page_text(browser)
    assert "Parcel damaged" in browser.find_element(By.ID, "conversation").text

    browser.find_element(By.CSS_SELECTOR, f"input[name=message][value='{later.message_pk}']").click()
    submit(browser, browser.find_element(By.ID, "split"))
    with live_server.app.transaction() as session:
        moved = session.get(Message, later.message_pk)
        assert moved is not None and moved.ticket_id not in (source.ticket_id, target.ticket_id)
        new_id = moved.ticket_id
        assert tickets.get_ticket(session, CC, source.ticket_id).state == "merged"
    assert browser.current_url == f"{live_server.url}/tickets/{new_id}"
    assert f"Split 1 message(s) of ticket {target.ticket_id} into new ticket {new_id}." in page_text(browser)

    submit(browser, browser.find_element(By.ID, "close"))
    assert f"Closed ticket {new_id}." in page_text(browser)
    assert browser.find_element(By.ID, "ticket-state").text == "closed"
    with live_server.app.transaction() as session:
        entries = {(e.action, e.target, e.actor) for e in audit.recent(session, 50, actor=agent.name)}
    assert entries == {
        ("ticket.merge", str(source.ticket_id), agent.name),
        ("ticket.split", str(target.ticket_id), agent.name),
        ("ticket.close", str(new_id), agent.name),
    }


def test_an_attachment_with_a_non_ascii_name_downloads_under_that_name(
    browser: webdriver.Chrome, live_server: LiveServer, make_agent: Callable[..., Account], desk: AgentDesk
) -> None:
    name = "Rechnung für März €.pdf"
    stored = desk.mail("Invoice", attachments=((name, "application/pdf", b"%PDF-1.4 Rechnung"),))
    agent = make_agent((desk.spec,))
    sign_in(browser, live_server.url, agent.name, agent.password)
    open_ticket(browser, live_server.url, stored.ticket_id)
    link = browser.find_element(By.LINK_TEXT, name)
    status, headers, data = download(browser, str(link.get_attribute("href")))
    assert (status, data) == (200, b"%PDF-1.4 Rechnung")
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"Rechnung fur Marz .pdf\"; filename*=UTF-8''Rechnung%20f%C3%BCr%20M%C3%A4rz%20%E2%82%AC.pdf"
    )
