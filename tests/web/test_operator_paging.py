"""The operator's long lists are filtered and paged by the database; times are shown to the second; a
missing id answers 404."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from selenium import webdriver
from selenium.webdriver.common.by import By

from postroom.core.app import Postroom
from postroom.core.data import audit
from postroom.core.data.models import FailedMessageSendInfo, MessageStatus, SMessageSendInfo
from postroom.core.data.paging import Window
from postroom.core.inbound.queries import count_held, held_mail_as_json, held_profile_names
from postroom.core.outbound import queries
from postroom.core.outbound.compose import queue_reply
from postroom.web.app import when
from tests.support.desk import Desk
from tests.support.mail import make_mail
from tests.web.conftest import Account, LiveServer, http_status, page_text, sign_in, submit

CENTER = 1


def _replies(desk: Desk, profile: str, count: int) -> list[int]:
    profile_id = desk.profile(profile, send_protocol="smtp", outgoing_host="127.0.0.1", outgoing_port=25)
    ids = []
    for n in range(count):
        ticket_id = desk.ticket(profile_id, sender=f"Cee <c{n}-{profile}@example.org>", to=f"{profile}@postroom.test")
        ids.append(queue_reply(desk.app, CENTER, ticket_id, "Your answer.").send_info_id)
    return ids


def test_the_outbox_query_filters_and_pages_in_the_database(database_url: str) -> None:
    app = Postroom(database_url)
    try:
        desk = Desk(app)
        mine = _replies(desk, "paged", 3)
        other = _replies(desk, "other", 1)
        long_ago = datetime.now(UTC) - timedelta(days=30)
        with app.transaction() as session:
            session.add(
                FailedMessageSendInfo(
                    send_info_id=mine[0], attempt=1, category="mailbox error", policy="default retry", created_at=long_ago
                )
            )
            session.get(SMessageSendInfo, other[0]).category = "mailbox error"  # type: ignore[union-attr]

        chosen = queries.OutboxFilter(profile="paged")
        with app.transaction() as session:
            assert queries.count_outbox(session, CENTER, chosen=chosen) == 3
            first = queries.outbox_as_json(session, CENTER, chosen=chosen, window=Window(2, 0))
            second = queries.outbox_as_json(session, CENTER, chosen=chosen, window=Window(2, 2))
            assert [r["id"] for r in first] == [mine[2], mine[1]] and [r["id"] for r in second] == [mine[0]]
            assert queries.count_outbox(session, CENTER, ["sent"], chosen) == 0

            by_category = queries.OutboxFilter(category="mailbox error")
            found = {r["id"] for r in queries.outbox_as_json(session, CENTER, chosen=by_category)}
            assert found == {mine[0], other[0]}  # by a failed attempt's category, or by its own
            recent = queries.OutboxFilter(category="mailbox error", since=long_ago + timedelta(days=1))
            found = {r["id"] for r in queries.outbox_as_json(session, CENTER, chosen=recent)}
            assert found == {other[0]}  # the attempt is older than the span; the other reply is not
            assert queries.count_failures(session, CENTER, chosen=by_category) == 1
            assert queries.count_failures(session, CENTER, chosen=recent) == 0
            assert queries.count_failures(session, CENTER, chosen=queries.OutboxFilter(profile="other")) == 0
            # The CLI's documents are unchanged: every row, oldest first.
            assert [r["id"] for r in queries.outbox_as_json(session, CENTER)] == [*mine, *other]
    finally:
        app.dispose()


def test_held_mail_is_counted_and_paged_in_the_database(database_url: str) -> None:
    app = Postroom(database_url)
    try:
        desk = Desk(app)
        desk.profile("held", routed=False)
        held = [desk.deliver(make_mail(f"Unrouted {n}"), "held").id for n in range(3)]
        with app.transaction() as session:
            assert count_held(session, CENTER, MessageStatus.UNROUTED) == 3
            page = held_mail_as_json(session, CENTER, MessageStatus.UNROUTED, Window(2, 2))
            assert [m["id"] for m in page] == [held[0]]
            assert held_profile_names(session, CENTER, MessageStatus.UNROUTED) == ["held"]
            assert count_held(session, CENTER, MessageStatus.QUARANTINED) == 0
    finally:
        app.dispose()


def test_times_are_shown_to_the_second_in_utc() -> None:
    assert when("2026-11-30T15:04:05.123456+00:00") == "2026-11-30 15:04:05 UTC"
    assert when(datetime(2026, 11, 30, 16, 4, 5, 999, tzinfo=UTC) + timedelta(hours=0)) == "2026-11-30 16:04:05 UTC"
    assert when("2026-11-30T17:04:05+01:00") == "2026-11-30 16:04:05 UTC"
    assert when(None) == "" and when(None, "never") == "never"


def test_the_audit_log_is_paged_newest_first(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    actor = f"cli:pager-{uuid.uuid4().hex[:8]}"
    with live_server.app.transaction() as session:
        for n in range(51):
            audit.record(session, actor, "config.add", f"target-{n}", {"n": n})
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    browser.get(f"{live_server.url}/audit?actor={actor}")
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    assert len(rows) == 50 and "target-50" in rows[0].text and "target-1" in rows[-1].text
    assert re.search(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b", rows[0].text), rows[0].text
    assert "Page 1 of 2 (51 in all)" in page_text(browser)

    submit(browser, browser.find_element(By.ID, "page-next"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    assert len(rows) == 1 and "target-0 " in rows[0].text
    assert "Page 2 of 2" in page_text(browser) and f"actor={actor}" in browser.current_url


def test_a_missing_quarantined_mail_or_rule_answers_404(
    browser: webdriver.Chrome, live_server: LiveServer, make_operator: Callable[..., Account]
) -> None:
    operator = make_operator()
    sign_in(browser, live_server.url, operator.name, operator.password)
    status, body = http_status(browser, f"{live_server.url}/quarantine/987654321")
    assert status == 404 and "There is no message 987654321" in body
    status, body = http_status(browser, f"{live_server.url}/rules/987654321/edit")
    assert status == 404 and "There is no routing rule 987654321." in body
