"""``--fetch-last-days N``: only mail of the last N days is fetched; older mail on the server stays untouched.

IMAP asks the server (``SEARCH SINCE``, the internal date of arrival); POP3 has no arrival date,
so the mail's own Date header is read with ``TOP``; Maildir uses the delivery time of the file and
EWS the received time.
"""

from __future__ import annotations

import mailbox
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.inbound.mailboxes import fetch_reports, stored_message_ids
from tests.servers.dovecot import Dovecot
from tests.servers.ews_responder import EwsStandIn
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=30)
RECENT = NOW - timedelta(days=2)


def _ids(*numbers: int) -> dict[str, int]:
    return {f"mail-{n}@example.org": 1 for n in numbers}


@pytest.mark.parametrize("protocol", ["imap", "imaps"])
def test_imap_fetches_only_mail_that_arrived_inside_the_window(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, protocol: str
) -> None:
    user, _ = dovecot.new_user("window")
    # Arrival (the internal date) decides, not the Date header a sender wrote.
    dovecot.deliver_many(user, [numbered_mail(n, date=OLD) for n in (1, 2)], date=OLD)
    dovecot.deliver_many(user, [numbered_mail(3, date=RECENT)], date=RECENT)
    dovecot.deliver_many(user, [numbered_mail(4, date=OLD), numbered_mail(5)], date=NOW)
    add_dovecot_profile(postroom_cli, dovecot, user, protocol, "--fetch-last-days", "7", "--delete-on-fetch")

    report = fetch_reports(postroom_cli)["support"]

    assert (report["stored"], report["error"]) == (3, None)
    assert stored_message_ids(database_url) == _ids(3, 4, 5)
    left = dovecot.fetch_all(user)
    assert [b"mail-1@" in raw and b"mail-2@" not in raw for raw in left] == [True, False]
    assert dovecot.flags_all(user) == [(), ()]  # untouched: neither read nor flagged


@pytest.mark.parametrize("protocol", ["pop3", "pop3s"])
def test_pop3_fetches_only_mail_whose_date_header_is_inside_the_window(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, protocol: str
) -> None:
    user, _ = dovecot.new_user("window")
    undated = numbered_mail(6)  # no Date header: fetched rather than never
    dovecot.deliver_many(
        user,
        [numbered_mail(1, date=OLD), numbered_mail(2, date=RECENT), numbered_mail(3, date=OLD), undated],
        date=NOW,
    )
    add_dovecot_profile(postroom_cli, dovecot, user, protocol, "--fetch-last-days", "7", "--delete-on-fetch")

    report = fetch_reports(postroom_cli)["support"]

    assert (report["stored"], report["error"]) == (2, None)
    assert stored_message_ids(database_url) == _ids(2, 6)
    left = dovecot.fetch_all(user)
    assert len(left) == 2 and b"mail-1@" in left[0] and b"mail-3@" in left[1]
    assert dovecot.flags_all(user) == [(), ()]


def test_a_later_cycle_with_a_wider_window_fetches_the_older_mail_once(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("widen")
    dovecot.deliver_many(user, [numbered_mail(1)], date=OLD)
    dovecot.deliver_many(user, [numbered_mail(2)], date=NOW)
    add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--fetch-last-days", "7")
    assert fetch_reports(postroom_cli)["support"]["stored"] == 1

    postroom_cli.ok("profile", "modify", "support", "--fetch-last-days", "0")

    assert fetch_reports(postroom_cli)["support"]["stored"] == 1
    assert stored_message_ids(database_url) == _ids(1, 2)


def test_maildir_fetches_only_files_delivered_inside_the_window(
    postroom_cli: Cli, database_url: str, tmp_path: Path
) -> None:
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    old_key = folder.add(numbered_mail(1))
    folder.add(numbered_mail(2))
    old_file = next((tmp_path / "Maildir" / "new").glob(f"{old_key}*"))
    os.utime(old_file, (OLD.timestamp(), OLD.timestamp()))
    postroom_cli.ok(
        "profile",
        "add",
        "support",
        "--fetch-protocol",
        "maildir",
        "--incoming-folder",
        str(tmp_path / "Maildir"),
        "--fetch-last-days",
        "7",
        "--delete-on-fetch",
    )

    assert fetch_reports(postroom_cli)["support"]["stored"] == 1
    assert stored_message_ids(database_url) == _ids(2)
    assert list(folder.keys()) == [old_key]


def test_ews_fetches_only_mail_received_inside_the_window(
    postroom_cli: Cli, database_url: str, ews_server: EwsStandIn, tmp_path: Path
) -> None:
    user = f"window-{tmp_path.name}@example.test"
    ews_server.add_user(user, "pw")
    ews_server.deliver(user, numbered_mail(1), received=OLD)
    ews_server.deliver(user, numbered_mail(2), received=RECENT)
    postroom_cli.ok(
        "profile",
        "add",
        "support",
        "--username",
        user,
        "--password-stdin",
        "--fetch-protocol",
        "ews",
        "--incoming-host",
        ews_server.endpoint,
        "--fetch-last-days",
        "7",
        "--delete-on-fetch",
        input="pw\n",
    )

    assert fetch_reports(postroom_cli)["support"]["stored"] == 1
    assert stored_message_ids(database_url) == _ids(2)
    assert [item.received for item in ews_server.items(user)] == [OLD]
