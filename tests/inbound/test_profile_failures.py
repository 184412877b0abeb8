"""A profile whose server fails is marked ``error`` with a readable reason and never stops the others.

Also ``postroom profile test``: it logs in and checks folders without fetching anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postroom.core.contract import events
from tests.inbound.mailboxes import fetch_reports, stored_message_ids
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpEndpoint, SmtpServers, free_port
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail


@pytest.fixture
def signals() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The profile-error and profile-recovered signals sent during the test, in order."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def on_error(_sender: object, **kwargs: Any) -> None:
        seen.append(("profile-error", kwargs))

    def on_recovered(_sender: object, **kwargs: Any) -> None:
        seen.append(("profile-recovered", kwargs))

    events.profile_error.connect(on_error)
    events.profile_recovered.connect(on_recovered)
    try:
        yield seen
    finally:
        events.profile_error.disconnect(on_error)
        events.profile_recovered.disconnect(on_recovered)


def _profiles(cli: Cli) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in cli.ok("profile", "list", "--json").json()}


def test_a_wrong_password_marks_only_that_profile_in_error_and_the_other_fetches(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, signals: list[tuple[str, dict[str, Any]]]
) -> None:
    bad_user, _ = dovecot.new_user("bad")
    good_user, _ = dovecot.new_user("good")
    dovecot.deliver(bad_user, numbered_mail(1, tag="bad"))
    dovecot.deliver_many(good_user, [numbered_mail(n, tag="good") for n in range(5)])
    add_dovecot_profile(postroom_cli, dovecot, bad_user, "imap", name="bad", password="not-the-password")
    add_dovecot_profile(postroom_cli, dovecot, good_user, "pop3", "--delete-on-fetch", name="good")

    result = postroom_cli.run("fetch", "--json")

    assert result.exit_code == 1
    reports = {r["profile"]: r for r in result.json()}
    assert (reports["good"]["stored"], reports["good"]["error"]) == (5, None)
    assert dovecot.count(good_user) == 0
    listed = _profiles(postroom_cli)
    assert listed["good"]["status"] == "ok"
    assert listed["bad"]["status"] == "error"
    reason = listed["bad"]["last_error"]
    assert f"refused the login {bad_user!r}" in reason
    assert f"{dovecot.host}:{dovecot.imap_port}" in reason
    assert "not-the-password" not in reason + result.stdout + result.stderr
    assert reason in result.stderr
    assert [(name, kw.get("kind")) for name, kw in signals] == [("profile-error", "auth")]
    assert dovecot.count(bad_user) == 1


def test_the_next_good_cycle_clears_the_error_and_says_the_profile_recovered(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, signals: list[tuple[str, dict[str, Any]]]
) -> None:
    user, password = dovecot.new_user("recover")
    dovecot.deliver(user, numbered_mail(1))
    add_dovecot_profile(postroom_cli, dovecot, user, "imaps", password="wrong")
    assert postroom_cli.run("fetch").exit_code == 1
    assert postroom_cli.run("fetch").exit_code == 1  # still failing: said again, still one error

    postroom_cli.ok("profile", "modify", "support", "--password-stdin", input=password + "\n")
    postroom_cli.ok("fetch")
    postroom_cli.ok("fetch")

    profile = _profiles(postroom_cli)["support"]
    assert (profile["status"], profile["last_error"]) == ("ok", None)
    assert [name for name, _ in signals] == ["profile-error", "profile-error", "profile-recovered"]
    assert stored_message_ids(database_url) == {"mail-1@example.org": 1}


@pytest.mark.parametrize(
    ("case", "kind", "words"),
    [
        ("unknown host", "unknown-host", "'no-such-host.invalid' of the IMAP server does not resolve"),
        ("closed port", "connection", "refused the connection"),
        ("missing folder", "folder", "The folder 'Nowhere' "),
        ("not imap", "protocol", "did not greet like an IMAP server"),
    ],
)
def test_each_kind_of_server_failure_is_one_readable_sentence_on_the_profile(
    postroom_cli: Cli,
    database_url: str,
    dovecot: Dovecot,
    signals: list[tuple[str, dict[str, Any]]],
    case: str,
    kind: str,
    words: str,
) -> None:
    user, password = dovecot.new_user("fail")
    host, port, folder = dovecot.host, str(dovecot.imap_port), "INBOX"
    if case == "unknown host":
        host = "no-such-host.invalid"
    elif case == "closed port":
        port = str(free_port())
    elif case == "missing folder":
        folder = "Nowhere"
    elif case == "not imap":
        port = str(dovecot.pop3_port)
    postroom_cli.ok(
        "profile",
        "add",
        "support",
        "--username",
        user,
        "--password-stdin",
        "--fetch-protocol",
        "imap",
        "--incoming-host",
        host,
        "--incoming-port",
        port,
        "--incoming-folder",
        folder,
        "--no-tls-verify",
        input=password + "\n",
    )

    result = postroom_cli.run("fetch")

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    profile = _profiles(postroom_cli)["support"]
    assert profile["status"] == "error"
    assert words in profile["last_error"]
    assert "\n" not in profile["last_error"]
    assert [(name, kw["kind"]) for name, kw in signals] == [("profile-error", kind)]


def test_fetching_one_named_profile_leaves_the_others_alone(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot
) -> None:
    first, _ = dovecot.new_user("first")
    second, _ = dovecot.new_user("second")
    dovecot.deliver(first, numbered_mail(1))
    dovecot.deliver(second, numbered_mail(2))
    add_dovecot_profile(postroom_cli, dovecot, first, "imap", name="first")
    add_dovecot_profile(postroom_cli, dovecot, second, "imap", name="second")

    assert list(fetch_reports(postroom_cli, "--profile", "second")) == ["second"]
    assert stored_message_ids(database_url, "second") == {"mail-2@example.org": 1}
    assert stored_message_ids(database_url, "first") == {}


def test_fetching_a_profile_without_incoming_mail_is_refused(postroom_cli: Cli) -> None:
    postroom_cli.ok("profile", "add", "outbound", "--send-protocol", "smtp", "--outgoing-host", "localhost")

    result = postroom_cli.run("fetch", "--profile", "outbound")

    assert result.exit_code == 1
    assert "Profile 'outbound' does not fetch mail" in result.stderr


# --- profile test ---------------------------------------------------------------------------------


def test_profile_test_shows_every_check_and_fails_when_the_outgoing_server_is_down(
    postroom_cli: Cli, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("check")
    port = free_port()
    add_dovecot_profile(
        postroom_cli,
        dovecot,
        user,
        "imaps",
        "--send-protocol",
        "smtp",
        "--outgoing-host",
        "127.0.0.1",
        "--outgoing-port",
        str(port),
    )

    result = postroom_cli.run("profile", "test", "support")

    assert result.exit_code == 1
    incoming, outgoing = result.stdout.splitlines()
    assert incoming.startswith(f"ok     incoming: logged in to imaps {dovecot.host}:{dovecot.imaps_port}")
    assert outgoing.startswith("FAILED outgoing: ")
    assert f"127.0.0.1:{port}" in outgoing


def _smtp_login_on_dovecot(dovecot: Dovecot, smtp: SmtpEndpoint) -> str:
    """Give Dovecot a user with the SMTP test server's login, so one profile login serves both servers."""
    username, password = str(smtp.username), str(smtp.password)
    (dovecot.base / "users" / username).write_text(f"{username}:{{PLAIN}}{password}::::::\n")
    dovecot.passwords[username] = password
    return username


def test_profile_test_says_ok_for_working_servers_and_names_a_missing_sent_folder(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, smtp_servers: SmtpServers, tmp_path: Path
) -> None:
    smtp = smtp_servers.starttls
    user = _smtp_login_on_dovecot(dovecot, smtp)
    inbox, sent = f"In-{tmp_path.name}", f"Sent-{tmp_path.name}"  # this test's own folders
    dovecot.deliver(user, numbered_mail(1), folder=inbox)
    add_dovecot_profile(
        postroom_cli,
        dovecot,
        user,
        "imap",
        "--incoming-folder",
        inbox,
        "--send-protocol",
        "smtp",
        "--outgoing-host",
        smtp.host,
        "--outgoing-port",
        str(smtp.port),
        "--outgoing-folder",
        sent,
        "--delete-on-fetch",
    )

    result = postroom_cli.run("profile", "test", "support")

    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines() == [
        f"ok     incoming: logged in to imap {dovecot.host}:{dovecot.imap_port} as {user!r} "
        f"and found folder {inbox!r}",
        f"ok     outgoing folder: {sent!r} does not exist yet; the first sent copy creates it",
        f"ok     outgoing: logged in to smtp {smtp.host}:{smtp.port} as {user!r}",
    ]
    assert dovecot.count(user, inbox) == 1
    assert dovecot.flags_all(user, inbox) == [()]
    assert stored_message_ids(database_url) == {}

    dovecot.create_folder(user, sent)
    assert (
        f"ok     outgoing folder: found folder {sent!r}"
        in postroom_cli.ok("profile", "test", "support").stdout
    )


def test_profile_test_with_a_wrong_password_fails_with_exit_1_naming_the_login(
    postroom_cli: Cli, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("check")
    add_dovecot_profile(postroom_cli, dovecot, user, "pop3s", password="pw-that-is-wrong-42")

    result = postroom_cli.run("profile", "test", "support")

    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED incoming: ")
    assert f"refused the login {user!r}" in result.stdout
    assert "pw-that-is-wrong-42" not in result.stdout + result.stderr
    # A check is not a fetch cycle: the profile's status is left as it was.
    assert _profiles(postroom_cli)["support"]["status"] == "ok"
