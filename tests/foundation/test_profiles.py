"""Media profiles through the CLI: the seed's field rules, immutability, secrets, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import Campaign, Customer, MediaProfile, Ticket, agent_media_profile
from tests.support.cli import Cli, PostroomProcess

SMTP_IMAP = [
    "--username",
    "support@example.test",
    "--send-protocol",
    "smtp",
    "--outgoing-host",
    "smtp.example.test",
    "--outgoing-port",
    "587",
    "--fetch-protocol",
    "imap",
    "--incoming-host",
    "imap.example.test",
    "--incoming-port",
    "143",
    "--send-from-address",
    "support@example.test",
]


def test_send_from_name_over_52_characters_is_refused(postroom_cli: Cli) -> None:
    result = postroom_cli.run("profile", "add", "p1", *SMTP_IMAP, "--send-from-name", "x" * 53)
    assert result.exit_code != 0
    assert "You have exceeded the maximum character limit" in result.stderr
    assert "53/52" in result.stderr
    assert "Traceback" not in result.stderr


def test_send_from_name_of_52_characters_is_accepted(postroom_cli: Cli) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP, "--send-from-name", "x" * 52)
    shown = postroom_cli.ok("profile", "show", "p1", "--json").json()
    assert shown["send_from_name"] == "x" * 52


@pytest.mark.parametrize(
    ("option", "value", "label"),
    [
        ("--fetch-protocol", "pop3", "fetch protocol"),
        ("--send-protocol", "smtps", "send protocol"),
        ("--incoming-folder", "Archive", "incoming folder"),
        ("--outgoing-folder", "Sent2", "outgoing folder"),
    ],
)
def test_protocols_and_folders_cannot_be_modified(
    postroom_cli: Cli, option: str, value: str, label: str
) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP, "--outgoing-folder", "Sent")
    result = postroom_cli.run("profile", "modify", "p1", option, value)
    assert result.exit_code != 0
    assert label in result.stderr
    assert "create a new profile" in result.stderr


def test_other_fields_can_be_modified(postroom_cli: Cli) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP)
    postroom_cli.ok(
        "profile",
        "modify",
        "p1",
        "--send-from-name",
        "ACME Support",
        "--subject-prefix",
        "[ACME]",
        "--fetch-interval",
        "30",
        "--fetch-last-days",
        "7",
        "--delete-on-fetch",
        "--reply-to",
        "help@example.test",
        "--incoming-host",
        "mail.example.test",
        "--no-tls-verify",
    )
    shown = postroom_cli.ok("profile", "show", "p1", "--json").json()
    assert shown["send_from_name"] == "ACME Support"
    assert shown["subject_prefix"] == "[ACME]"
    assert (shown["fetch_interval"], shown["fetch_last_days"], shown["delete_on_fetch"]) == (30, 7, True)
    assert (shown["reply_to_enabled"], shown["reply_to"]) == (True, "help@example.test")
    assert shown["incoming_host"] == "mail.example.test"
    assert shown["tls_verify"] is False
    assert "[ACME]" in shown["subject_preview"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--incoming-port", "70000"], "between 1 and 65535"),
        (["--outgoing-port", "0"], "between 1 and 65535"),
        (["--send-from-address", "not-an-address"], "not an email address"),
        (["--reply-to", "a@@b"], "not an email address"),
        (["--fetch-protocol", "gopher"], "not a fetch protocol"),
        (["--send-protocol", "imap"], "not a send protocol"),
        (["--subject-prefix", "a\nBcc: x@example.test"], "single line"),
        (["--fetch-interval", "0"], "between 1 and 604800"),
    ],
)
def test_invalid_values_are_refused_in_one_sentence(
    postroom_cli: Cli, args: list[str], fragment: str
) -> None:
    base = [a for a in SMTP_IMAP]
    for option in args[::2]:
        if option in base:
            index = base.index(option)
            del base[index : index + 2]
    result = postroom_cli.run("profile", "add", "p1", *base, *args)
    assert result.exit_code != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_password_and_confirmation_must_match(postroom_cli: Cli) -> None:
    result = postroom_cli.run(
        "profile", "add", "p1", *SMTP_IMAP, "--ask-password", input="secret-1\nsecret-2\n"
    )
    assert result.exit_code != 0
    assert "do not match" in result.stderr
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP, "--ask-password", input="secret-1\nsecret-1\n")


def test_password_is_never_shown_logged_or_stored_in_clear(
    postroom_cli: Cli, app: Postroom, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Correct-Horse-Battery-Staple-4711"
    caplog.set_level("DEBUG")
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP, "--password-stdin", input=password + "\n")
    outputs = [
        postroom_cli.ok("profile", "show", "p1", "--json").stdout,
        postroom_cli.ok("profile", "show", "p1").stdout,
        postroom_cli.ok("profile", "list", "--json").stdout,
        postroom_cli.ok("profile", "list").stdout,
    ]
    for output in outputs:
        assert password not in output
        assert "password" not in output.lower().replace("password_stdin", "")
    assert password not in caplog.text
    with app.transaction() as session:
        stored = session.scalar(select(MediaProfile.password_encrypted))
    assert stored is not None and password.encode() not in stored
    if app.engine.url.get_backend_name() == "sqlite":
        database_file = Path(app.engine.url.database or "")
        app.dispose()
        for path in database_file.parent.glob(database_file.name + "*"):
            assert password.encode() not in path.read_bytes()


def test_secret_key_file_is_created_private(postroom_cli: Cli, postroom_home: Path) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP, "--password-stdin", input="pw\n")
    key_file = postroom_home / "secret.key"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_deleting_a_profile_detaches_it_disables_its_rules_and_keeps_its_tickets(
    postroom_cli: Cli, app: Postroom
) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP)
    postroom_cli.ok("campaign", "add", "Sales", "--profile", "p1")
    postroom_cli.ok("queue", "add", "Sales", "First line", "--profile", "p1")
    postroom_cli.ok("agent", "add", "alice", "--profile", "p1")
    postroom_cli.ok("rule", "add", "--profile", "p1", "--campaign", "Sales", "--queue", "First line")
    with app.transaction() as session:
        profile = session.scalar(select(MediaProfile))
        campaign = session.scalar(select(Campaign))
        assert profile is not None and campaign is not None
        customer = Customer(contact_center_id=1, name="Bob")
        session.add(customer)
        session.flush()
        session.add(
            Ticket(
                contact_center_id=1,
                campaign_id=campaign.id,
                customer_id=customer.id,
                source_profile_id=profile.id,
                subject="Order",
                normalised_subject="order",
            )
        )
    refused = postroom_cli.run("profile", "delete", "p1", input="n\n")
    assert refused.exit_code != 0
    postroom_cli.ok("profile", "delete", "p1", "--yes")
    assert postroom_cli.ok("profile", "list", "--json").json() == []
    assert postroom_cli.ok("campaign", "list", "--json").json()[0]["profiles"] == []
    assert postroom_cli.ok("queue", "list", "--json").json()[0]["profiles"] == []
    assert postroom_cli.ok("agent", "list", "--json").json()[0]["profiles"] == []
    rules = postroom_cli.ok("rule", "list", "--json").json()
    assert [r["enabled"] for r in rules] == [False]
    with app.transaction() as session:
        assert session.scalar(select(Ticket.subject)) == "Order"
        assert session.execute(select(agent_media_profile)).all() == []
    # The name is free again for a new profile.
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP)


def test_profile_list_json_has_the_documented_keys(postroom_cli: Cli) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP, "--resolver", "customer", "--resolver", "case-id")
    [profile] = postroom_cli.ok("profile", "list", "--json").json()
    for key in (
        "id",
        "name",
        "send_protocol",
        "fetch_protocol",
        "incoming_folder",
        "outgoing_folder",
        "fetch_interval",
        "fetch_last_days",
        "delete_on_fetch",
        "resolvers",
        "status",
        "last_error",
    ):
        assert key in profile
    assert profile["resolvers"] == ["customer", "case-id"]
    assert profile["status"] == "ok"
    assert profile["incoming_folder"] == "INBOX"


def test_unknown_profile_is_one_sentence(postroom_cli: Cli) -> None:
    result = postroom_cli.run("profile", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: There is no media profile named 'nope'."


def _answer_on_a_terminal(database_url: str, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run ``postroom ARGS`` on a pseudo-terminal, typing each answer after each prompt."""
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    process = PostroomProcess(database_url, *args, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen, pending, answered = b"", list(answers), 0
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if pending and seen.count(b"assword: ") > answered:
            answered += 1
            os.write(leader, pending.pop(0).encode() + b"\n")
    os.close(leader)
    return process.wait(30), seen.decode(errors="replace")


def test_profile_add_with_a_login_at_a_terminal_asks_for_the_password_twice(
    postroom_cli: Cli, app: Postroom
) -> None:
    url = postroom_cli.database_url
    code, output = _answer_on_a_terminal(
        url, ["profile", "add", "p1", "--username", "u@example.test"], ["first-secret", "other-secret"]
    )
    assert code == 1 and "do not match" in output
    code, output = _answer_on_a_terminal(
        url, ["profile", "add", "p1", "--username", "u@example.test"], ["same-secret", "same-secret"]
    )
    assert code == 0, output
    assert output.count("assword") == 2 and "same-secret" not in output  # hidden input, asked twice
    with app.transaction() as session:
        stored = session.scalar(select(MediaProfile.password_encrypted))
    assert stored is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fetch-protocol", "imap"], "The incoming host is required for protocol 'imap'."),
        (["--send-protocol", "smtps"], "The outgoing host is required for protocol 'smtps'."),
        (["--fetch-protocol", "maildir"], "The incoming folder is required for protocol 'maildir'."),
        (["--send-protocol", "maildir"], "The outgoing folder is required for protocol 'maildir'."),
    ],
)
def test_a_profile_lacking_what_its_protocol_needs_is_refused_in_one_sentence(
    postroom_cli: Cli, args: list[str], message: str
) -> None:
    result = postroom_cli.run("profile", "add", "p1", *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {message}"


@pytest.mark.parametrize(("protocol", "folder"), [("imap", "INBOX"), ("imaps", "INBOX"), ("ews", "Inbox")])
def test_a_new_profile_gets_its_fetch_protocols_default_folder(
    postroom_cli: Cli, protocol: str, folder: str
) -> None:
    postroom_cli.ok("profile", "add", "p1", "--fetch-protocol", protocol, "--incoming-host", "mail.example.test")
    shown = postroom_cli.ok("profile", "show", "p1", "--json").json()
    assert (shown["incoming_folder"], shown["incoming_port"]) == (folder, None)


def test_a_profile_whose_protocol_plugin_is_switched_off_keeps_its_other_settings_editable(
    postroom_cli: Cli,
) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP)
    postroom_cli.ok("plugins", "disable", "smtp")

    postroom_cli.ok("profile", "modify", "p1", "--subject-prefix", "[ACME]")
    assert postroom_cli.ok("profile", "show", "p1", "--json").json()["subject_prefix"] == "[ACME]"


def test_plaintext_login_is_off_by_default_and_profile_show_warns_while_it_is_on(postroom_cli: Cli) -> None:
    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP)
    shown = postroom_cli.ok("profile", "show", "p1", "--json").json()
    assert (shown["allow_plaintext_login"], shown["warnings"]) == (False, [])
    assert "Warning" not in postroom_cli.ok("profile", "show", "p1").stdout

    postroom_cli.ok("profile", "modify", "p1", "--allow-plaintext-login")

    shown = postroom_cli.ok("profile", "show", "p1", "--json").json()
    assert shown["allow_plaintext_login"] is True
    [warning] = shown["warnings"]
    assert "unencrypted" in warning and "--no-allow-plaintext-login" in warning
    text = postroom_cli.ok("profile", "show", "p1").stdout
    assert f"Warning: {warning}\n" in text
    assert "allow plaintext login" in text

    postroom_cli.ok("profile", "modify", "p1", "--no-allow-plaintext-login")
    assert postroom_cli.ok("profile", "show", "p1", "--json").json()["warnings"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--outgoing-login", "oauth"],
            "'oauth' is not an outgoing login; choose one of: same, password, token, none.",
        ),
        (
            ["--outgoing-login", "password"],
            "Outgoing login 'password' of profile 'p1' needs an outgoing username.",
        ),
        (
            ["--outgoing-login", "password", "--outgoing-username", "relay"],
            "Outgoing login 'password' of profile 'p1' needs an outgoing password.",
        ),
        (
            ["--outgoing-username", "relay"],
            "An outgoing username is used only with outgoing login 'password' or 'token'; "
            "profile 'p1' has outgoing login 'same'.",
        ),
        (
            ["--outgoing-login", "none", "--outgoing-username", "relay"],
            "An outgoing username is used only with outgoing login 'password' or 'token'; "
            "profile 'p1' has outgoing login 'none'.",
        ),
        (
            ["--outgoing-login", "token", "--outgoing-password-stdin"],
            "An outgoing password is used only with outgoing login 'password'; "
            "profile 'p1' has outgoing login 'token'.",
        ),
    ],
)
def test_an_outgoing_login_lacking_or_given_what_its_mode_does_not_take_is_refused_in_one_sentence(
    postroom_cli: Cli, args: list[str], message: str
) -> None:
    result = postroom_cli.run("profile", "add", "p1", *SMTP_IMAP, *args, input="relay-pw\n")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {message}"
    assert postroom_cli.ok("profile", "list", "--json").json() == []


def test_the_outgoing_login_defaults_to_same_and_each_mode_keeps_only_what_it_uses(
    postroom_cli: Cli, app: Postroom
) -> None:
    def stored() -> tuple[str, str | None, bool]:
        with app.transaction() as session:
            profile = session.scalar(select(MediaProfile))
            assert profile is not None
            return (
                profile.outgoing_login,
                profile.outgoing_username,
                profile.outgoing_password_encrypted is not None,
            )

    postroom_cli.ok("profile", "add", "p1", *SMTP_IMAP, "--password-stdin", input="mailbox-pw\n")
    assert stored() == ("same", None, False)
    shown = postroom_cli.ok("profile", "show", "p1", "--json").json()
    assert (shown["outgoing_login"], shown["outgoing_username"]) == ("same", None)

    postroom_cli.ok(
        "profile",
        "modify",
        "p1",
        "--outgoing-login",
        "password",
        "--outgoing-username",
        "relay@example.test",
        "--outgoing-password-stdin",
        input="Relay-Secret-4711\n",
    )
    assert stored() == ("password", "relay@example.test", True)
    text = postroom_cli.ok("profile", "show", "p1").stdout
    assert "outgoing username      relay@example.test" in text and "Relay-Secret-4711" not in text

    # A new user alone keeps the stored password; a token needs no password, so it is dropped.
    postroom_cli.ok("profile", "modify", "p1", "--outgoing-username", "relay2@example.test")
    assert stored() == ("password", "relay2@example.test", True)
    postroom_cli.ok("profile", "modify", "p1", "--outgoing-login", "token")
    assert stored() == ("token", "relay2@example.test", False)
    postroom_cli.ok("profile", "modify", "p1", "--outgoing-login", "none")
    assert stored() == ("none", None, False)


def test_both_passwords_on_standard_input_come_incoming_first(postroom_cli: Cli, app: Postroom) -> None:
    from postroom.core.data.secrets import decrypt_password

    postroom_cli.ok(
        "profile",
        "add",
        "p1",
        *SMTP_IMAP,
        "--outgoing-password-stdin",
        "--password-stdin",
        "--outgoing-login",
        "password",
        "--outgoing-username",
        "relay@example.test",
        input="mailbox-pw\nrelay-pw\n",
    )
    with app.transaction() as session:
        profile = session.scalar(select(MediaProfile))
        assert profile is not None
        passwords = (
            decrypt_password(profile.password_encrypted),
            decrypt_password(profile.outgoing_password_encrypted),
        )
    assert passwords == ("mailbox-pw", "relay-pw")
    missing = postroom_cli.run(
        "profile", "modify", "p1", "--password-stdin", "--outgoing-password-stdin", input="only-one\n"
    )
    assert missing.stderr.strip() == (
        "Error: --outgoing-password-stdin was given but standard input has no line for it."
    )
