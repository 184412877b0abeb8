"""Failed sends: each error category, its policy and next attempt (fixed clock), retry limits, seed SQL.

The replies are injected into real aiosmtpd servers; faults are real too (a name that does not
resolve, a closed port, a wrong password). Only the "internal error" case needs a deliberately
broken protocol plugin, since it stands for a bug.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.protocols import (
    ConnectionSettings,
    ProtocolPlugin,
    Sender,
    SendFailure,
    SendReport,
)
from postroom.core.contract.retry import ErrorCategory
from postroom.core.data.models import MediaProfile, SendState
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import Outbox, OutboxReport
from tests.outbox.helpers import NOW, failure_rows, outbox_rows, pending
from tests.servers.smtp import SmtpScript, SmtpServers
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk

pytestmark = pytest.mark.usefixtures("smtp_script")

MINUTES_5 = timedelta(seconds=300)


@pytest.fixture
def desk(app: Postroom) -> Desk:
    return Desk(app)


@pytest.fixture
def plain_profile(desk: Desk, smtp_servers: SmtpServers) -> int:
    return desk.smtp_profile("support", smtp_servers.plain)


def _reply(desk: Desk, profile_id: int, **mail: Any) -> int:
    return queue_reply(desk.app, 1, desk.ticket(profile_id, **mail), "Your answer.", now=NOW).send_info_id


def _send(app: Postroom, now: datetime = NOW) -> OutboxReport:
    return Outbox(app).send_due(now)


@pytest.mark.parametrize(
    ("command", "reply", "category", "policy", "delay"),
    [
        (
            "RCPT",
            "550 5.1.1 The email account that you tried to reach does not exist",
            "addressing error",
            "no retry",
            None,
        ),
        ("RCPT", "452 4.2.2 The recipient's mailbox is full", "mailbox error", "progressive retry", 300),
        ("DATA", "552 5.3.4 Message size exceeds fixed limit", "mail system error", "progressive retry", 300),
        (
            "DATA",
            "451 4.4.1 No answer from the next host",
            "network routing error",
            "rate limit retry",
            86400,
        ),
        (
            "MAIL",
            "555 5.5.4 MAIL FROM parameters not recognised",
            "mail delivery protocol error",
            "no retry",
            None,
        ),
        ("DATA", "554 5.6.0 Message content rejected", "message content error", "no retry", None),
        ("DATA", "550 5.7.1 Message rejected by policy", "security policy error", "progressive retry", 300),
        ("DATA", "554 Transaction failed", "unidentified error", "default retry", 0),
        (
            "DATA",
            "550-5.1.1 The first line decides\r\n550 5.7.1 later lines do not",
            "addressing error",
            "no retry",
            None,
        ),
    ],
)
def test_each_injected_reply_gets_its_category_policy_and_next_attempt(
    app: Postroom,
    desk: Desk,
    plain_profile: int,
    smtp_script: SmtpScript,
    command: str,
    reply: str,
    category: str,
    policy: str,
    delay: int | None,
) -> None:
    _reply(desk, plain_profile)
    if command == "RCPT":
        smtp_script.refuse_recipient(CUSTOMER, reply)
    elif command == "MAIL":
        smtp_script.refuse_sender(reply)
    else:
        smtp_script.refuse_data(reply)

    _send(app)

    [failure] = failure_rows(app)
    expected_at = None if delay is None else NOW + timedelta(seconds=delay)
    code = reply[:3]
    assert (failure.category, failure.policy, failure.attempt) == (category, policy, 1)
    assert (failure.reply_code, failure.next_attempt_at) == (int(code), expected_at)
    assert failure.enhanced_code == (reply[4:9] if reply[4].isdigit() else None)
    assert failure.recipient == (CUSTOMER if command == "RCPT" else None)
    [row] = outbox_rows(app)
    assert (row.category, row.policy, row.attempts) == (category, policy, 1)
    if delay is None:
        assert (row.state, row.next_attempt_at, pending(row)) == (SendState.FAILED, None, [])
    else:
        assert (row.state, row.next_attempt_at, pending(row)) == (
            SendState.RETRY_SCHEDULED,
            expected_at,
            [CUSTOMER],
        )


def test_an_unknown_host_is_not_retried(app: Postroom, desk: Desk) -> None:
    profile_id = desk.profile("support", send_protocol="smtp", outgoing_host="no-such-host.invalid")
    _reply(desk, profile_id)
    _send(app)
    [failure] = failure_rows(app)
    assert (failure.category, failure.policy, failure.next_attempt_at) == ("unknown host", "no retry", None)
    assert "no-such-host.invalid" in (failure.text or "")
    assert outbox_rows(app)[0].state == SendState.FAILED


def test_a_refused_port_is_a_connection_error_retried_progressively(
    app: Postroom, desk: Desk, refused_port: int
) -> None:
    profile_id = desk.profile(
        "support", send_protocol="smtp", outgoing_host="127.0.0.1", outgoing_port=refused_port
    )
    _reply(desk, profile_id)
    _reply(desk, profile_id, subject="Second question")
    _send(app)
    failures = failure_rows(app)
    assert [(f.category, f.policy, f.next_attempt_at) for f in failures] == [
        ("connection error", "progressive retry", NOW + MINUTES_5)
    ] * 2


def test_a_wrong_password_is_a_security_policy_error_and_never_shown(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    profile_id = desk.smtp_profile("support", smtp_servers.starttls, password="not-the-password")
    _reply(desk, profile_id)
    _send(app)
    [failure] = failure_rows(app)
    assert (failure.category, failure.policy, failure.next_attempt_at) == (
        "security policy error",
        "progressive retry",
        NOW + MINUTES_5,
    )
    assert (failure.reply_code, failure.enhanced_code) == (535, "5.7.8")
    assert "not-the-password" not in (failure.text or "")


class _Calls:
    """A classifier that only records that it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(tryfirst=True)
    def postroom_classify_send_error(self, error: SendFailure, profile: MediaProfile) -> None:
        self.calls += 1


def test_a_profile_whose_protocol_has_no_plugin_is_no_such_provider_without_asking_the_classifier(
    app: Postroom, desk: Desk, plain_profile: int, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reply(desk, plain_profile)
    monkeypatch.setenv("POSTROOM_DISABLE_PLUGINS", "smtp")
    classifier = _Calls()
    without_smtp = Postroom(database_url, extra_plugins=[("calls", classifier)])
    try:
        _send(without_smtp)
    finally:
        without_smtp.dispose()
    [failure] = failure_rows(app)
    assert (failure.category, failure.policy, failure.next_attempt_at) == (
        "no such provider",
        "no retry",
        None,
    )
    assert "'smtp'" in (failure.text or "") and classifier.calls == 0
    assert outbox_rows(app)[0].state == SendState.FAILED


class _BrokenSender(Sender):
    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        raise RuntimeError("the plugin tripped over its own feet")

    def close(self) -> None:
        pass


class _BrokenProtocol(ProtocolPlugin):
    NAME = "broken"
    CAN_SEND = True
    NEEDS_HOST = False

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        return _BrokenSender()


class _BrokenPlugin:
    @hookimpl
    def postroom_register_protocols(self) -> list[type[ProtocolPlugin]]:
        return [_BrokenProtocol]


def test_an_unexpected_exception_is_an_internal_error_and_not_retried(
    app: Postroom, database_url: str
) -> None:
    plugged = Postroom(database_url, extra_plugins=[("broken", _BrokenPlugin())])
    try:
        desk = Desk(plugged)
        _reply(desk, desk.profile("support", send_protocol="broken"))
        report = _send(plugged)
    finally:
        plugged.dispose()
    assert report.failed == 1
    [failure] = failure_rows(app)
    assert (failure.category, failure.policy, failure.next_attempt_at) == ("internal error", "no retry", None)
    assert "RuntimeError: the plugin tripped over its own feet" in (failure.text or "")


def test_a_classifier_plugin_decides_before_the_builtin(
    app: Postroom, database_url: str, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    class Throttle:
        @hookimpl
        def postroom_classify_send_error(
            self, error: SendFailure, profile: MediaProfile
        ) -> ErrorCategory | None:
            return ErrorCategory.NETWORK_ROUTING if "throttled" in error.text else None

    plugged = Postroom(database_url, extra_plugins=[("throttle", Throttle())])
    try:
        desk = Desk(plugged)
        _reply(desk, desk.smtp_profile("support", smtp_servers.plain))
        smtp_script.refuse_data("550 5.7.1 Sender throttled, slow down")
        _send(plugged)
    finally:
        plugged.dispose()
    [failure] = failure_rows(app)
    assert (failure.category, failure.policy) == ("network routing error", "rate limit retry")
    assert failure.next_attempt_at == NOW + timedelta(days=1)


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
    _reply(desk, plain_profile)
    smtp_script.refuse_data(reply)
    now = NOW
    for delay in delays:
        assert _send(app, now).retry_scheduled == 1
        if delay:
            assert _send(app, now + timedelta(seconds=delay - 1)).claimed == 0  # not due yet
        now += timedelta(seconds=delay)
    assert _send(app, now).failed == 1
    assert _send(app, now + timedelta(days=30)).claimed == 0

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
    first = _reply(desk, plain_profile)
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
    second = _reply(desk, plain_profile, subject="Another question")
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
    _reply(desk, plain_profile)
    _send(app)  # the defaults: next attempt after 300 s
    _seed_retry_sql(app, plain_profile, '{"progressiveRetryInterval":"30"}')
    postroom_cli.ok("reload")
    _send(app, NOW + MINUTES_5)  # the second retry after 2 x 30 s
    assert [f.next_attempt_at for f in failure_rows(app)] == [
        NOW + MINUTES_5,
        NOW + MINUTES_5 + timedelta(seconds=60),
    ]


def test_a_partly_refused_recipient_list_retries_only_the_refused(
    app: Postroom, desk: Desk, plain_profile: int, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    send_info_id = _reply(desk, plain_profile, cc="ola@example.org, ben@gone.example")
    smtp_script.refuse_recipient("ola@example.org", "452 4.2.2 Mailbox full", times=1)
    smtp_script.refuse_recipient("ben@gone.example", "550 5.1.1 No such user")

    first = _send(app)

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

    assert _send(app, NOW + MINUTES_5).sent == 1

    assert [mail.recipients for mail in smtp_servers.received("plain")] == [(CUSTOMER,), ("ola@example.org",)]
    [row] = outbox_rows(app)
    assert (row.id, row.state, row.attempts, pending(row)) == (send_info_id, SendState.SENT, 2, [])


def test_every_recipient_refused_for_different_reasons_is_handled_each_by_its_own_category(
    app: Postroom, desk: Desk, plain_profile: int, smtp_script: SmtpScript
) -> None:
    _reply(desk, plain_profile, cc="ben@gone.example")
    smtp_script.refuse_recipient(CUSTOMER, "452 4.2.2 Mailbox full")
    smtp_script.refuse_recipient("ben@gone.example", "550 5.1.1 No such user")
    _send(app)
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
    refused = _reply(desk, plain_profile, sender="Ben <ben@gone.example>")
    retried = _reply(desk, plain_profile, sender="Ola <ola@example.org>", subject="Full mailbox")
    sent = _reply(desk, plain_profile, subject="Fine")
    smtp_script.refuse_recipient("ben@gone.example", "550 5.1.1 No such user")
    smtp_script.refuse_recipient("ola@example.org", "452 4.2.2 Mailbox full")

    _send(app)

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
