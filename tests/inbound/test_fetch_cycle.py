"""``postroom fetch`` against real Dovecot (imap, imaps, pop3, pop3s), a local Maildir and the EWS stand-in.

Profiles are made with ``postroom profile add`` as an operator would; every test runs on SQLite
and on PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import logging
import mailbox
import os
import pty
import select as io_select
from pathlib import Path

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import MessageRaw
from postroom.core.data.profiles import get_profile
from postroom.core.inbound.fetch import Fetcher
from tests.inbound.mailboxes import fetch_reports, ledger_size, message_id_of, stored_message_ids
from tests.servers.dovecot import Dovecot
from tests.servers.ews_responder import EwsStandIn
from tests.support.cli import Cli, PostroomProcess
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail

PROTOCOLS = ["imap", "imaps", "pop3", "pop3s"]
MAILS = 50


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_fetch_stores_all_50_mails_and_delete_on_fetch_empties_the_mailbox(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, protocol: str
) -> None:
    user, _ = dovecot.new_user(protocol)
    mails = [numbered_mail(n, tag=protocol) for n in range(MAILS)]
    dovecot.deliver_many(user, mails)
    add_dovecot_profile(postroom_cli, dovecot, user, protocol, "--delete-on-fetch")

    report = fetch_reports(postroom_cli)["support"]

    assert (report["fetched"], report["stored"], report["deleted"], report["error"]) == (
        MAILS,
        MAILS,
        MAILS,
        None,
    )
    assert stored_message_ids(database_url) == {message_id_of(m): 1 for m in mails}
    assert dovecot.count(user) == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_without_delete_on_fetch_mail_stays_and_three_more_cycles_store_nothing_more(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, protocol: str
) -> None:
    user, _ = dovecot.new_user(protocol)
    mails = [numbered_mail(n, tag=protocol) for n in range(MAILS)]
    dovecot.deliver_many(user, mails)
    add_dovecot_profile(postroom_cli, dovecot, user, protocol)

    first = fetch_reports(postroom_cli)["support"]
    later = [fetch_reports(postroom_cli)["support"] for _ in range(3)]

    assert (first["stored"], first["deleted"]) == (MAILS, 0)
    assert [(r["fetched"], r["stored"], r["error"]) for r in later] == [(0, 0, None)] * 3
    assert stored_message_ids(database_url) == {message_id_of(m): 1 for m in mails}
    assert ledger_size(database_url) == MAILS
    assert dovecot.count(user) == MAILS
    if protocol.startswith("imap"):
        # BODY.PEEK: fetching does not even mark them read.
        assert all(b"\\Seen" not in flags for flags in dovecot.flags_all(user))


def test_mail_arriving_between_cycles_is_fetched_by_the_next_cycle(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("later")
    dovecot.deliver_many(user, [numbered_mail(n) for n in range(3)])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap")
    assert fetch_reports(postroom_cli)["support"]["stored"] == 3

    dovecot.deliver_many(user, [numbered_mail(n) for n in range(3, 5)])

    assert fetch_reports(postroom_cli)["support"]["stored"] == 2
    assert sorted(stored_message_ids(database_url)) == [f"mail-{n}@example.org" for n in range(5)]


@pytest.mark.parametrize("protocol", ["imaps", "pop3s", "imap", "pop3"])
def test_tls_with_verification_on_is_refused_naming_the_host_and_how_to_switch_it_off(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, protocol: str
) -> None:
    user, _ = dovecot.new_user("tls")
    dovecot.deliver(user, numbered_mail(1))
    add_dovecot_profile(postroom_cli, dovecot, user, protocol, tls_verify=True)

    result = postroom_cli.run("fetch")

    assert result.exit_code == 1
    [profile] = postroom_cli.ok("profile", "list", "--json").json()
    assert profile["status"] == "error"
    reason = profile["last_error"]
    assert f"{dovecot.host}:{dovecot.port_for(protocol)}" in reason
    assert "could not be verified" in reason
    assert "postroom profile modify support --no-tls-verify" in reason
    assert reason in result.stderr
    assert stored_message_ids(database_url) == {}
    assert dovecot.count(user) == 1


def test_switching_verification_off_lets_the_next_cycle_fetch(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("tlsoff")
    dovecot.deliver(user, numbered_mail(1))
    add_dovecot_profile(postroom_cli, dovecot, user, "imaps", tls_verify=True)
    assert postroom_cli.run("fetch").exit_code == 1

    postroom_cli.ok("profile", "modify", "support", "--no-tls-verify")

    assert postroom_cli.run("fetch").exit_code == 0
    assert stored_message_ids(database_url) == {"mail-1@example.org": 1}
    assert postroom_cli.ok("profile", "list", "--json").json()[0]["status"] == "ok"


def _maildir_profile(cli: Cli, path: Path, *options: str) -> None:
    cli.ok(
        "profile", "add", "support", "--fetch-protocol", "maildir", "--incoming-folder", str(path), *options
    )


def test_a_local_maildir_is_fetched_and_emptied_with_delete_on_fetch(
    postroom_cli: Cli, database_url: str, tmp_path: Path
) -> None:
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    mails = [numbered_mail(n, tag="maildir") for n in range(MAILS)]
    for raw in mails:
        folder.add(raw)
    _maildir_profile(postroom_cli, tmp_path / "Maildir", "--delete-on-fetch")

    report = fetch_reports(postroom_cli)["support"]

    assert (report["stored"], report["deleted"], report["error"]) == (MAILS, MAILS, None)
    assert stored_message_ids(database_url) == {message_id_of(m): 1 for m in mails}
    assert len(folder) == 0


def test_a_local_maildir_kept_on_fetch_is_stored_once_over_several_cycles(
    postroom_cli: Cli, database_url: str, tmp_path: Path
) -> None:
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(10):
        folder.add(numbered_mail(n))
    _maildir_profile(postroom_cli, tmp_path / "Maildir")

    reports = [fetch_reports(postroom_cli)["support"] for _ in range(4)]

    assert [r["stored"] for r in reports] == [10, 0, 0, 0]
    assert len(folder) == 10
    assert sum(stored_message_ids(database_url).values()) == 10


def test_an_ews_mailbox_is_fetched_and_emptied_through_the_stand_in(
    postroom_cli: Cli, database_url: str, ews_server: EwsStandIn, tmp_path: Path
) -> None:
    user = f"ews-{tmp_path.name}@example.test"  # a mailbox of this test's own
    ews_server.add_user(user, "ews-password")
    mails = [numbered_mail(n, tag="ews") for n in range(30)]
    for raw in mails:
        ews_server.deliver(user, raw)
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
        "--delete-on-fetch",
        input="ews-password\n",
    )

    report = fetch_reports(postroom_cli, "--batch-size", "7")["support"]

    assert (report["stored"], report["deleted"], report["error"]) == (30, 30, None)
    assert stored_message_ids(database_url) == {message_id_of(m): 1 for m in mails}
    assert ews_server.items(user) == []
    assert fetch_reports(postroom_cli)["support"]["fetched"] == 0


def test_raw_bytes_are_stored_exactly_as_the_server_sent_them_big_or_small(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("raw")
    big = numbered_mail(1).replace(
        b"Hello, this is mail 1.", b"A" * 76 + b"\r\n" + b"0123456789ABCDEF" * 200_000
    )
    eight_bit = numbered_mail(2).replace(b"Hello", "Grüße \u00ff".encode("latin-1"))
    dovecot.deliver_many(user, [big, eight_bit, numbered_mail(3)])
    served = dovecot.fetch_all(user)
    add_dovecot_profile(postroom_cli, dovecot, user, "imap")

    postroom_cli.ok("fetch", "--batch-size", "2")

    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            stored = session.scalars(select(MessageRaw.raw).order_by(MessageRaw.message_pk)).all()
    finally:
        app.dispose()
    assert [bytes(raw) for raw in stored] == served


def test_a_terminal_sees_a_progress_bar_while_a_big_cycle_runs(
    postroom_cli: Cli, database_url: str, tmp_path: Path
) -> None:
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(60):
        folder.add(numbered_mail(n))
    _maildir_profile(postroom_cli, tmp_path / "Maildir")
    controller, terminal = pty.openpty()
    try:
        completed = PostroomProcess(database_url, "fetch", "--batch-size", "20", stderr=terminal).finish()
        os.close(terminal)
        drawn = b""
        while io_select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side is closed and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)

    assert completed.exit_code == 0
    assert b"fetching support" in drawn and b"100%" in drawn
    assert "fetching" not in completed.stdout  # the bar goes to the terminal, the table to stdout


def test_imap_batches_keep_within_their_byte_limit(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    user, _ = dovecot.new_user("bytes")
    padding = b"\r\n".join([b"x" * 76] * 4000)  # about 300 KB each
    dovecot.deliver_many(user, [numbered_mail(n).replace(b"Hello", padding) for n in range(6)])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap")
    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            profile_id = get_profile(session, "support", DEFAULT_CONTACT_CENTER_ID).id
        # imapclient logs every command it sends at debug level: count the downloads.
        with caplog.at_level(logging.DEBUG, logger="imapclient.imaplib"):
            report = Fetcher(app, batch_mails=100, batch_bytes=700_000).fetch_profile(profile_id)
    finally:
        app.dispose()

    assert (report.stored, report.error) == (6, None)
    downloads = [r for r in caplog.records if "> " in r.getMessage() and "BODY.PEEK[]" in r.getMessage()]
    assert len(downloads) == 3
