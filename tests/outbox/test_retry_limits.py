"""Failed sends over time: retry limits, the seed's SQL and reloads, partial refusals, the outcome signals.

The replies are injected into real aiosmtpd servers (fixed clock).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.data.models import SendState
from tests.outbox.helpers import NOW, failure_rows, outbox_rows, pending, queue_customer_reply, send_at
from tests.servers.smtp import SmtpScript, SmtpServers
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk

pytestmark = pytest.mark.usefixtures("smtp_script")

MINUTES_5 = timedelta(seconds=300)


@pytest.mark.parametrize(
    ("reply", "delays"),
    [
        ("451 Try again later", [0, 0, 0]),  # unidentified: default retry, at once
        ("452 4.2.2 Mailbox full", [300, 600, 900]),  # progressive retry
        ("451 4.4.1 Throttled", [86400, 86400, 86400]),  # rate limit retry
    ],
)
def test_attempts_stop_at_max_retry_count(
    app: Postroom, desk: Desk, plain_profile: int, smtp_script: SmtpScript, reply: str, delays: list[int]
) -> None:
    queue_customer_reply(desk, plain_profile)
    smtp_script.refuse_data(reply)
    now = NOW
    for delay in delays:
        assert send_at(app, now).retry_scheduled == 1
        if delay:
            assert send_at(app, now + timedelta(seconds=delay - 1)).claimed == 0  # not due yet
        now += timedelta(seconds=delay)
    assert send_at(app, now).failed == 1
    assert send_at(app, now + timedelta(days=30)).claimed == 0

    [row] = outbox_rows(app)
    assert (row.state, row.attempts, row.next_attempt_at) == (SendState.FAILED, 4, None)
    failures = failure_rows(app)
    assert [f.attempt for f in failures] == [1, 2, 3, 4]
    assert failures[-1].next_attempt_at is None
    gaps = [
        int((f.next_attempt_at - f.created_at).total_seconds()) for f in failures[:-1] if f.next_attempt_at
    ]
    assert gaps == delays


def _seed_retry_sql(app: Postroom, profile_id: int, properties: str) -> None:
    with app.engine.begin() as connection:
        connection.execute(
            text(
                "insert into media_profile_configuration(media_profile_id, contact_center_id, "
                f"media_profile_type, media_profile_properties) values ({profile_id}, 1, 'email', '{properties}')"
            )
        )


def test_seed_sql_and_profile_retry_variables_apply_after_reload(
    app: Postroom, desk: Desk, plain_profile: int, postroom_cli: Cli, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_recipient(CUSTOMER, "452 4.2.2 Mailbox full")
    first = queue_customer_reply(desk, plain_profile)
    _seed_retry_sql(
        app, plain_profile, '{"maxRetryCount":"1","rateLimitRetryTime":"600","progressiveRetryInterval":"60"}'
    )
    postroom_cli.ok("reload")
    postroom_cli.ok("send", "--now", NOW.isoformat())
    assert [f.next_attempt_at for f in failure_rows(app)] == [NOW + timedelta(seconds=60)]
    postroom_cli.ok("send", "--now", (NOW + timedelta(seconds=60)).isoformat())
    assert [(r.id, r.state, r.attempts) for r in outbox_rows(app)] == [(first, SendState.FAILED, 2)]

    postroom_cli.ok(
        "profile", "retry", "support", "--max-retry-count", "2", "--progressive-retry-interval", "120"
    )
    postroom_cli.ok("reload")
    second = queue_customer_reply(desk, plain_profile, subject="Another question")
    later = NOW + timedelta(hours=1)
    for offset in (0, 120, 360):
        postroom_cli.ok("send", "--now", (later + timedelta(seconds=offset)).isoformat())
    failures = [f for f in failure_rows(app) if f.send_info_id == second]
    assert [f.next_attempt_at for f in failures] == [
        later + timedelta(seconds=120),
        later + timedelta(seconds=360),
        None,
    ]


def test_a_changed_variable_counts_from_the_next_attempt_on(
    app: Postroom, desk: Desk, plain_profile: int, postroom_cli: Cli, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_recipient(CUSTOMER, "452 4.2.2 Mailbox full")
    queue_customer_reply(desk, plain_profile)
    send_at(app)  # the defaults: next attempt after 300 s
    _seed_retry_sql(app, plain_profile, '{"progressiveRetryInterval":"30"}')
    postroom_cli.ok("reload")
    send_at(app, NOW + MINUTES_5)  # the second retry after 2 x 30 s
    assert [f.next_attempt_at for f in failure_rows(app)] == [
        NOW + MINUTES_5,
        NOW + MINUTES_5 + timedelta(seconds=60),
    ]


def test_a_partly_refused_recipient_list_retries_only_the_refused(
    app: Postroom, desk: Desk, plain_profile: int, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    send_info_id = queue_customer_reply(desk, plain_profile, cc="ola@example.org, ben@gone.example")
    smtp_script.refuse_recipient("ola@example.org", "452 4.2.2 Mailbox full", times=1)
    smtp_script.refuse_recipient("ben@gone.example", "550 5.1.1 No such user")

    first = send_at(app)

    assert (first.partial, first.retry_scheduled) == (1, 1)
    [row] = outbox_rows(app)
    assert (row.state, pending(row), row.next_attempt_at) == (
        SendState.RETRY_SCHEDULED,
        ["ola@example.org"],
        NOW + MINUTES_5,
    )
    assert [(f.recipient, f.category, f.next_attempt_at) for f in failure_rows(app)] == [
        ("ola@example.org", "mailbox error", NOW + MINUTES_5),
        ("ben@gone.example", "addressing error", None),
    ]

    assert send_at(app, NOW + MINUTES_5).sent == 1

    assert [mail.recipients for mail in smtp_servers.received("plain")] == [(CUSTOMER,), ("ola@example.org",)]
    [row] = outbox_rows(app)
    assert (row.id, row.state, row.attempts, pending(row)) == (send_info_id, SendState.SENT, 2, [])


def test_every_recipient_refused_for_different_reasons_is_handled_each_by_its_own_category(
    app: Postroom, desk: Desk, plain_profile: int, smtp_script: SmtpScript
) -> None:
    queue_customer_reply(desk, plain_profile, cc="ben@gone.example")
    smtp_script.refuse_recipient(CUSTOMER, "452 4.2.2 Mailbox full")
    smtp_script.refuse_recipient("ben@gone.example", "550 5.1.1 No such user")
    send_at(app)
    [row] = outbox_rows(app)
    assert (row.state, pending(row)) == (SendState.RETRY_SCHEDULED, [CUSTOMER])
    assert [(f.recipient, f.policy) for f in failure_rows(app)] == [
        (CUSTOMER, "progressive retry"),
        ("ben@gone.example", "no retry"),
    ]


@pytest.fixture
def signals() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for signal in (events.send_succeeded, events.send_failed, events.retry_scheduled, events.send_abandoned):

        def receiver(sender: object, _name: str = signal.name, **kwargs: Any) -> None:
            seen.append((_name, kwargs))

        receivers[signal] = receiver
        signal.connect(receiver)
    try:
        yield seen
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)


def test_outcomes_are_signalled(
    app: Postroom,
    desk: Desk,
    plain_profile: int,
    smtp_script: SmtpScript,
    signals: list[tuple[str, dict[str, Any]]],
) -> None:
    refused = queue_customer_reply(desk, plain_profile, sender="Ben <ben@gone.example>")
    retried = queue_customer_reply(desk, plain_profile, sender="Ola <ola@example.org>", subject="Full mailbox")
    sent = queue_customer_reply(desk, plain_profile, subject="Fine")
    smtp_script.refuse_recipient("ben@gone.example", "550 5.1.1 No such user")
    smtp_script.refuse_recipient("ola@example.org", "452 4.2.2 Mailbox full")

    send_at(app)

    names = [(name, kwargs["send_info_id"]) for name, kwargs in signals]
    assert names == [
        ("send-failed", refused),
        ("send-abandoned", refused),
        ("send-failed", retried),
        ("retry-scheduled", retried),
        ("send-succeeded", sent),
    ]
    assert signals[0][1]["category"] == "addressing error"
    assert signals[0][1]["recipients"] == ["ben@gone.example"]
    assert signals[3][1]["next_attempt_at"] == NOW + MINUTES_5
    assert signals[4][1]["attempts"] == 1
