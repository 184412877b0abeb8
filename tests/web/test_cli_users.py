"""``postroom web user add|passwd|remove|list`` and ``postroom web``'s refusals, on both databases."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

from argon2 import PasswordHasher

from postroom.core.app import Postroom
from postroom.core.data import audit, web_accounts
from postroom.core.data.models import EngineSetting
from postroom.web import users
from tests.support.cli import Cli, PostroomProcess

PASSWORD = "a long enough password\n"


def _queue(postroom_cli: Cli) -> None:
    postroom_cli.ok("campaign", "add", "Sales")
    postroom_cli.ok("queue", "add", "Sales", "First line")


def test_add_list_passwd_remove_and_each_is_audited(postroom_cli: Cli, database_url: str) -> None:
    _queue(postroom_cli)
    added = postroom_cli.ok(
        "web", "user", "add", "ada", "--role", "operator", "--password-stdin", input=PASSWORD
    )
    assert "Created console account 'ada' (operator" in added.stdout
    postroom_cli.ok(
        "web",
        "user",
        "add",
        "bo",
        "--role",
        "agent",
        "--queue",
        "Sales/First line",
        "--password-stdin",
        input=PASSWORD,
    )
    listed = postroom_cli.ok("web", "user", "list", "--json").json()
    assert [(u["name"], u["role"], u["queues"]) for u in listed] == [
        ("ada", "operator", []),
        ("bo", "agent", ["Sales/First line"]),
    ]
    assert "Sales/First line" in postroom_cli.ok("web", "user", "list").stdout

    app = Postroom(database_url)
    try:
        with app.transaction() as session:
            stored = web_accounts.get_user(session, "ada").password_hash
            assert stored.startswith("$argon2id$") and "a long enough password" not in stored
            assert users.verify(session, "ada", "a long enough password") is not None

        postroom_cli.ok("web", "user", "passwd", "ada", "--password-stdin", input="another password\n")
        with app.transaction() as session:
            assert users.verify(session, "ada", "a long enough password") is None
            assert users.verify(session, "ada", "another password") is not None

        postroom_cli.ok("web", "user", "remove", "bo")
        assert [u["name"] for u in postroom_cli.ok("web", "user", "list", "--json").json()] == ["ada"]

        with app.transaction() as session:
            entries = [
                (e.action, e.target, e.actor.startswith("cli:")) for e in reversed(audit.recent(session))
            ]
        assert entries == [
            ("campaign.add", "Sales", True),
            ("queue.add", "Sales/First line", True),
            ("web-user.add", "ada", True),
            ("web-user.add", "bo", True),
            ("web-user.passwd", "ada", True),
            ("web-user.remove", "bo", True),
        ]
    finally:
        app.dispose()


def test_the_password_is_asked_twice_at_the_prompt(postroom_cli: Cli) -> None:
    result = postroom_cli.ok(
        "web", "user", "add", "cy", "--role", "operator", input="first password\nfirst password\n"
    )
    assert "Created console account 'cy'" in result.stdout
    refused = postroom_cli.run(
        "web", "user", "add", "di", "--role", "operator", input="first password\nother one\n" * 1
    )
    assert refused.exit_code != 0


def test_refusals_are_one_sentence(postroom_cli: Cli) -> None:
    _queue(postroom_cli)
    postroom_cli.ok("web", "user", "add", "ada", "--role", "operator", "--password-stdin", input=PASSWORD)
    cases = {
        (
            "web",
            "user",
            "add",
            "x",
            "--role",
            "boss",
            "--password-stdin",
        ): "There is no role 'boss'; a console account is an 'operator' or an 'agent'.",
        (
            "web",
            "user",
            "add",
            "x",
            "--role",
            "agent",
            "--queue",
            "Sales/Nope",
            "--password-stdin",
        ): "There is no queue 'Sales/Nope'; see 'postroom queue list'.",
        (
            "web",
            "user",
            "add",
            "x",
            "--role",
            "operator",
            "--queue",
            "Sales/First line",
            "--password-stdin",
        ): "An operator sees every queue; give --queue to agents only.",
        (
            "web",
            "user",
            "add",
            "ada",
            "--role",
            "operator",
            "--password-stdin",
        ): "A console account named 'ada' already exists.",
        (
            "web",
            "user",
            "passwd",
            "nobody",
            "--password-stdin",
        ): "There is no console account named 'nobody'; see 'postroom web user list'.",
        (
            "web",
            "user",
            "remove",
            "nobody",
        ): "There is no console account named 'nobody'; see 'postroom web user list'.",
        (
            "web",
            "--listen",
            "127.0.0.1:70000",
        ): "The console's port must be between 0 (any free port) and 65535, not 70000.",
        (
            "web",
            "--listen",
            "localhost",
        ): "--listen takes [HOST:]PORT (an IPv6 host in brackets), not 'localhost'.",
    }
    for args, sentence in cases.items():
        result = postroom_cli.run(*args, input=PASSWORD)
        assert (result.exit_code, result.stderr) == (1, f"Error: {sentence}\n"), args
    short = postroom_cli.run(
        "web", "user", "add", "x", "--role", "operator", "--password-stdin", input="short\n"
    )
    assert (short.exit_code, short.stderr) == (1, "Error: A console password needs at least 8 characters.\n")
    assert [u["name"] for u in postroom_cli.ok("web", "user", "list", "--json").json()] == ["ada"]


def test_a_password_hashed_with_old_parameters_is_rehashed_on_sign_in(app: Postroom) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with app.transaction() as session:
        web_accounts.add_user(session, "old", weak.hash("an old password"), "operator", [])
    with app.transaction() as session:
        assert users.verify(session, "old", "an old password") is not None
    with app.transaction() as session:
        rehashed = web_accounts.get_user(session, "old").password_hash
    assert rehashed.startswith("$argon2id$") and "m=8," not in rehashed
    assert not PasswordHasher().check_needs_rehash(rehashed)


def test_the_session_key_is_made_once_and_stored_encrypted(app: Postroom) -> None:
    with app.transaction() as session:
        key = web_accounts.session_key(session)
    with app.transaction() as session:
        assert web_accounts.session_key(session) == key
        stored = session.get(EngineSetting, web_accounts.SESSION_KEY_SETTING)
        assert stored is not None and key not in stored.value


def test_the_cli_and_the_worker_load_no_web_stack() -> None:
    """What 'postroom --help' imports (every command module) and the worker's modules carry no Flask."""
    code = (
        "import sys, importlib, postroom.cli as c, postroom.core.worker.scheduler;"
        "[importlib.import_module('postroom.cli.' + m) for ms in c.COMMAND_MODULES.values() for m in ms];"
        "assert 'postroom.cli.web' in sys.modules;"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'waitress', 'flask_wtf', 'werkzeug', 'argon2'));"
        "print(loaded)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_postroom_web_serves_the_console_and_says_so_when_no_account_exists(database_url: str) -> None:
    """The real command in a process: it makes its session key, listens, prints where, and serves."""
    process = PostroomProcess(database_url, "web", "--listen", "127.0.0.1:0", timeout=60)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.fullmatch(
            r"postroom web: serving the console on (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops\)\.\n", first
        )
        assert found, first
        assert (
            "create the first operator with 'postroom web user add NAME --role operator'"
            in process.stdout.readline()
        )
        with urllib.request.urlopen(f"{found.group(1)}signin", timeout=30) as response:
            assert response.status == 200
            assert 'name="csrf_token"' in response.read().decode()
    finally:
        process.terminate()
        process.wait()
    app = Postroom(database_url)
    try:
        with app.transaction() as session:
            assert session.get(EngineSetting, web_accounts.SESSION_KEY_SETTING) is not None
    finally:
        app.dispose()


def test_disable_ends_sessions_and_refuses_sign_in_until_enabled_and_each_is_audited(
    postroom_cli: Cli, database_url: str
) -> None:
    postroom_cli.ok("web", "user", "add", "ada", "--role", "operator", "--password-stdin", input=PASSWORD)
    app = Postroom(database_url)
    try:
        with app.transaction() as session:
            token = web_accounts.open_session(session, web_accounts.get_user(session, "ada"))

        disabled = postroom_cli.ok("web", "user", "disable", "ada")
        assert "Disabled console account 'ada'" in disabled.stdout
        assert "already" in postroom_cli.ok("web", "user", "disable", "ada").stdout
        assert postroom_cli.ok("web", "user", "list", "--json").json()[0]["disabled"] is True
        with app.transaction() as session:
            assert web_accounts.session_user(session, token) is None
            assert users.verify(session, "ada", "a long enough password") is None

        postroom_cli.ok("web", "user", "enable", "ada")
        with app.transaction() as session:
            assert web_accounts.session_user(session, token) is None  # the ended session stays ended
            assert users.verify(session, "ada", "a long enough password") is not None
            entries = [(e.action, e.target, e.actor) for e in reversed(audit.recent(session))]
        assert entries == [
            ("web-user.add", "ada", audit.cli_actor()),
            ("web-user.disable", "ada", audit.cli_actor()),
            ("web-user.enable", "ada", audit.cli_actor()),
        ]
        refused = postroom_cli.run("web", "user", "disable", "nobody")
        assert refused.exit_code != 0
        assert "There is no console account named 'nobody'" in refused.stderr
    finally:
        app.dispose()
