"""Every number an operator sets on a profile or a run has a range: refused outside it in one sentence,
and pulled into it (with a log line) when an older version or SQL stored it out of range.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile, utcnow
from postroom.core.worker.leases import release_profile
from tests.foundation.test_profiles import SMTP_IMAP
from tests.inbound.mailboxes import fetch_reports, stored_message_ids
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail


@pytest.mark.parametrize(
    ("option", "value", "sentence"),
    [
        ("--fetch-last-days", "99999999999", "The number of days to fetch must be between 0 and 36500"),
        ("--fetch-last-days", "-1", "The number of days to fetch must be between 0 and 36500"),
        ("--fetch-interval", "0", "The fetch interval (seconds) must be between 1 and 604800"),
        ("--fetch-interval", "99999999999", "The fetch interval (seconds) must be between 1 and 604800"),
        ("--incoming-port", "70000", "The incoming port must be between 1 and 65535"),
        ("--outgoing-port", "0", "The outgoing port must be between 1 and 65535"),
    ],
)
def test_a_profile_value_out_of_its_range_is_refused_in_one_sentence_naming_field_and_range(
    postroom_cli: Cli, option: str, value: str, sentence: str
) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP)
    for args in (("add", "p2", *SMTP_IMAP, option, value), ("modify", "p1", option, value)):
        result = postroom_cli.run("profile", *args)
        assert result.exit_code == 1
        assert result.stderr.strip() == f"Error: {sentence}, not {value}."
    assert [p["name"] for p in postroom_cli.ok("profile", "list", "--json").json()] == ["p1"]


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("send", "--batch-size", "0"), "0 is not in the range 1<=x<=10000"),
        (("send", "--batch-size", "99999999999"), "99999999999 is not in the range 1<=x<=10000"),
        (("run", "--batch-size", "99999999999"), "99999999999 is not in the range 1<=x<=10000"),
        (("run", "--threads", "0"), "0 is not in the range 1<=x<=64"),
        (("run", "--lease", "99999999999"), "99999999999 is not in the range 5<=x<=3600"),
    ],
)
def test_a_run_option_out_of_its_range_is_refused_in_one_sentence(
    postroom_cli: Cli, args: tuple[str, ...], shown: str
) -> None:
    result = postroom_cli.run(*args)
    assert result.exit_code == 2
    assert shown in result.stderr
    assert "Traceback" not in result.stderr


def test_a_fetch_window_stored_out_of_range_is_clamped_at_use_and_the_fetch_goes_on(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    user, _ = dovecot.new_user("far")
    dovecot.deliver_many(user, [numbered_mail(1)])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap")
    app = Postroom(database_url)
    try:
        # As an older version or an UPDATE typed in SQL could leave it (the largest INTEGER).
        with app.transaction() as session:
            session.execute(update(MediaProfile).values(fetch_last_days=2**31 - 1))
    finally:
        app.dispose()

    report = fetch_reports(postroom_cli)["support"]

    assert (report["stored"], report["error"]) == (1, None)
    assert stored_message_ids(database_url) == {"mail-1@example.org": 1}
    assert "the number of days to fetch 2147483647 is out of range (0-36500); using 36500" in caplog.text


@pytest.mark.parametrize("stored", [0, -5])
def test_a_fetch_interval_stored_out_of_range_is_clamped_when_the_next_fetch_is_planned(
    app: Postroom, stored: int, caplog: pytest.LogCaptureFixture
) -> None:
    now = utcnow()
    with app.transaction() as session:
        session.add(
            MediaProfile(
                contact_center_id=1,
                name="busy",
                fetch_interval=stored,
                lease_owner="me",
                consecutive_failures=0,
            )
        )
    with app.transaction() as session:
        profile_id = session.scalar(select(MediaProfile.id))
        assert profile_id is not None
        next_at = release_profile(session, "me", profile_id, now, now)
    assert next_at == now + timedelta(seconds=1)
    assert f"the fetch interval (seconds) {stored} is out of range (1-604800); using 1" in caplog.text


@pytest.mark.parametrize("value", ["-1", "1000001", "99999999999"])
def test_a_rule_priority_out_of_its_range_is_refused_in_one_sentence(postroom_cli: Cli, value: str) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP)
    postroom_cli.ok("campaign", "add", "Support")
    postroom_cli.ok("queue", "add", "Support", "First line")
    rule = ("rule", "add", "--profile", "p1", "--campaign", "Support", "--queue", "First line")

    result = postroom_cli.run(*rule, "--priority", value)

    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: The rule priority must be between 0 and 1000000, not {value}."
    assert postroom_cli.ok("rule", "list", "--json").json() == []
    postroom_cli.ok(*rule, "--priority", "1000000")  # the bounds themselves are taken
    postroom_cli.ok(*rule, "--priority", "0")
    assert [r["priority"] for r in postroom_cli.ok("rule", "list", "--json").json()] == [0, 1000000]
