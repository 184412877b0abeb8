"""Failed sends: each error category, its policy and next attempt (fixed clock).

The replies are injected into real aiosmtpd servers; faults are real too (a name that does not
resolve, a closed port, a wrong password). Only the "internal error" case needs a deliberately
broken protocol plugin, since it stands for a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from postroom.core.app import Postroom
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
from tests.outbox.helpers import NOW, failure_rows, outbox_rows, pending, queue_customer_reply, send_at
from tests.servers.smtp import SmtpScript, SmtpServers
from tests.support.desk import CUSTOMER, Desk

pytestmark = pytest.mark.usefixtures("smtp_script")

MINUTES_5 = timedelta(seconds=300)


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
    queue_customer_reply(desk, plain_profile)
    if command == "RCPT":
        smtp_script.refuse_recipient(CUSTOMER, reply)
    elif command == "MAIL":
        smtp_script.refuse_sender(reply)
    else:
        smtp_script.refuse_data(reply)

    send_at(app)

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
    queue_customer_reply(desk, profile_id)
    send_at(app)
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
    queue_customer_reply(desk, profile_id)
    queue_customer_reply(desk, profile_id, subject="Second question")
    send_at(app)
    failures = failure_rows(app)
    assert [(f.category, f.policy, f.next_attempt_at) for f in failures] == [
        ("connection error", "progressive retry", NOW + MINUTES_5)
    ] * 2


def test_a_wrong_password_is_a_security_policy_error_and_never_shown(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    profile_id = desk.smtp_profile("support", smtp_servers.starttls, password="not-the-password")
    queue_customer_reply(desk, profile_id)
    send_at(app)
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
    queue_customer_reply(desk, plain_profile)
    monkeypatch.setenv("POSTROOM_DISABLE_PLUGINS", "smtp")
    classifier = _Calls()
    without_smtp = Postroom(database_url, extra_plugins=[("calls", classifier)])
    try:
        send_at(without_smtp)
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
        queue_customer_reply(desk, desk.profile("support", send_protocol="broken"))
        report = send_at(plugged)
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
        queue_customer_reply(desk, desk.smtp_profile("support", smtp_servers.plain))
        smtp_script.refuse_data("550 5.7.1 Sender throttled, slow down")
        send_at(plugged)
    finally:
        plugged.dispose()
    [failure] = failure_rows(app)
    assert (failure.category, failure.policy) == ("network routing error", "rate limit retry")
    assert failure.next_attempt_at == NOW + timedelta(days=1)
