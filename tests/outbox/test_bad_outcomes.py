"""One reply whose outcome cannot be decided or recorded never stops the others.

Retry variables have ranges (refused by ``profile retry``, clamped when typed in SQL), and a
reply whose outcome still cannot be decided (a policy plugin that raises) ends failed with an
internal-error record, or sent if a recipient got it, while the run goes on. Real aiosmtpd
servers, fixed clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

import pytest
from sqlalchemy import text

from postroom.core.app import Postroom
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import RetryDecision, RetryPolicy, RetrySettings
from postroom.core.data.models import SendState
from tests.outbox.helpers import NOW, failure_rows, outbox_rows, queue_customer_reply, send_at
from tests.servers.smtp import SmtpScript, SmtpServers
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk

pytestmark = pytest.mark.usefixtures("smtp_script")

FULL = "452 4.2.2 Mailbox full"
YEAR = timedelta(days=365)


@pytest.mark.parametrize(
    ("option", "value", "sentence"),
    [
        (
            "--progressive-retry-interval",
            "1000000000000",
            "The progressive retry interval (seconds) must be between 0 and 31536000",
        ),
        (
            "--rate-limit-retry-time",
            "99999999999",
            "The rate limit retry time (seconds) must be between 0 and 31536000",
        ),
        ("--max-retry-count", "1000", "The max retry count must be between 0 and 100"),
        ("--max-retry-count", "-1", "The max retry count must be between 0 and 100"),
    ],
)
def test_a_retry_variable_out_of_its_range_is_refused_in_one_sentence(
    app: Postroom, plain_profile: int, postroom_cli: Cli, option: str, value: str, sentence: str
) -> None:
    result = postroom_cli.run("profile", "retry", "support", option, value)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {sentence}, not {value}."
    with app.engine.connect() as connection:
        assert connection.execute(text("select count(*) from media_profile_configuration")).scalar() == 0


def test_a_huge_progressive_interval_in_the_seed_sql_neither_stops_the_run_nor_the_next_runs(
    app: Postroom,
    desk: Desk,
    smtp_servers: SmtpServers,
    smtp_script: SmtpScript,
    postroom_cli: Cli,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The bad profile comes first: the outbox sends profile by profile, in the order of their ids.
    bad = desk.smtp_profile("bad", smtp_servers.plain)
    good = desk.smtp_profile("good", smtp_servers.plain)
    with app.engine.begin() as connection:
        connection.execute(
            text(
                "insert into media_profile_configuration(media_profile_id, contact_center_id, "
                "media_profile_type, media_profile_properties) "
                f"values ({bad}, 1, 'email', '{{\"progressiveRetryInterval\":\"1000000000000\"}}')"
            )
        )
    smtp_script.refuse_recipient("ola@example.org", FULL)
    refused = queue_customer_reply(desk, bad, sender="Ola <ola@example.org>", to="bad@postroom.test")
    healthy = queue_customer_reply(desk, good, subject="Fine", to="good@postroom.test")

    first = postroom_cli.run("send", "--now", NOW.isoformat())

    assert (first.exit_code, first.stdout.strip()) == (0, "Sent 1, retry scheduled 1, failed 0.")
    states = {row.id: (row.state, row.next_attempt_at) for row in outbox_rows(app)}
    assert states == {refused: (SendState.RETRY_SCHEDULED, NOW + YEAR), healthy: (SendState.SENT, None)}
    assert "progressiveRetryInterval=1000000000000 is out of range (0-31536000); using 31536000" in caplog.text

    later = queue_customer_reply(desk, good, subject="Later", to="good@postroom.test")
    for when in (NOW + timedelta(days=1), NOW + YEAR):
        assert postroom_cli.run("send", "--now", when.isoformat()).exit_code == 0
    rows = {row.id: row for row in outbox_rows(app)}
    assert rows[later].state == SendState.SENT
    assert (rows[refused].state, rows[refused].attempts) == (SendState.RETRY_SCHEDULED, 2)
    assert rows[refused].next_attempt_at == NOW + YEAR + 2 * YEAR
    assert len(smtp_servers.received("plain")) == 2


class _RaisingProgressive(RetryPolicy):
    NAME: ClassVar[str] = "progressive retry"

    def next_attempt(self, retries_done: int, now: datetime, settings: RetrySettings) -> RetryDecision:
        raise RuntimeError("the policy tripped over its own feet")


class _RaisingPolicyPlugin:
    @hookimpl
    def postroom_register_retry_policies(self) -> list[type[RetryPolicy]]:
        return [_RaisingProgressive]


def test_a_policy_plugin_that_raises_fails_its_reply_and_the_run_sends_the_others(
    app: Postroom, database_url: str, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    app.set_plugin_enabled("progressive-retry", False)  # the raising plugin takes its name
    plugged = Postroom(database_url, extra_plugins=[("raising-policy", _RaisingPolicyPlugin())])
    try:
        desk = Desk(plugged)
        profile = desk.smtp_profile("support", smtp_servers.plain)
        smtp_script.refuse_recipient("ola@example.org", FULL)
        refused = queue_customer_reply(desk, profile, sender="Ola <ola@example.org>")
        # Ben got the mail before the policy raised for Ola: the reply is sent, never tried again.
        partly = queue_customer_reply(desk, profile, sender="Ben <ben@example.org>", cc="ola@example.org")
        healthy = queue_customer_reply(desk, profile, subject="Fine")

        report = send_at(plugged)
        again = send_at(plugged, NOW + timedelta(days=30))
    finally:
        plugged.dispose()

    assert (report.sent, report.failed, report.retry_scheduled) == (2, 1, 0)
    assert again.claimed == 0
    rows = {row.id: row for row in outbox_rows(app)}
    assert {i: rows[i].state for i in rows} == {
        refused: SendState.FAILED,
        partly: SendState.SENT,
        healthy: SendState.SENT,
    }
    failures = [f for f in failure_rows(app) if f.send_info_id == refused]
    assert [(f.category, f.policy, f.next_attempt_at) for f in failures] == [
        ("internal error", "no retry", None)
    ]
    assert "RuntimeError: the policy tripped over its own feet" in (failures[0].text or "")
    assert "ola@example.org: 452 4.2.2 Mailbox full" in (failures[0].text or "")
    recipients = sorted(r for mail in smtp_servers.received("plain") for r in mail.recipients)
    assert recipients == ["ben@example.org", CUSTOMER]


class _UnstorableProgressive(RetryPolicy):
    NAME: ClassVar[str] = "progressive retry"

    def next_attempt(self, retries_done: int, now: datetime, settings: RetrySettings) -> RetryDecision:
        return RetryDecision("next Tuesday")  # type: ignore[arg-type]  # what a careless plugin returns


class _UnstorablePolicyPlugin:
    @hookimpl
    def postroom_register_retry_policies(self) -> list[type[RetryPolicy]]:
        return [_UnstorableProgressive]


def test_an_outcome_that_cannot_be_stored_fails_its_reply_and_the_run_sends_the_others(
    app: Postroom, database_url: str, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    app.set_plugin_enabled("progressive-retry", False)
    plugged = Postroom(database_url, extra_plugins=[("unstorable-policy", _UnstorablePolicyPlugin())])
    try:
        desk = Desk(plugged)
        profile = desk.smtp_profile("support", smtp_servers.plain)
        smtp_script.refuse_recipient("ola@example.org", FULL)
        refused = queue_customer_reply(desk, profile, sender="Ola <ola@example.org>")
        healthy = queue_customer_reply(desk, profile, subject="Fine")
        report = send_at(plugged)
    finally:
        plugged.dispose()

    assert (report.sent, report.failed) == (1, 1)
    rows = {row.id: row.state for row in outbox_rows(app)}
    assert rows == {refused: SendState.FAILED, healthy: SendState.SENT}
    [failure] = [f for f in failure_rows(app) if f.send_info_id == refused]
    assert (failure.category, failure.next_attempt_at) == ("internal error", None)
    assert "Internal error while recording the outcome" in (failure.text or "")
