"""Input a careless operator gives (bytes that are not UTF-8, ids beyond 64 bits, a database URL whose
driver is missing, an unusable data folder, a prompt without a terminal) ends in one sentence on stderr
and a non-zero exit, never a traceback (issue 11, finding 8).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from postroom.core.app import Postroom
from tests.support.cli import Cli, CliResult, PostroomProcess
from tests.support.desk import Desk


def _one_sentence(result: CliResult, *expected: str) -> None:
    assert result.exit_code != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


def test_an_argument_that_is_not_utf8_is_refused_naming_it(postroom_cli: Cli) -> None:
    # Python hands argv bytes that are not UTF-8 on as lone surrogates; the process gets the raw byte.
    result = postroom_cli.run_process("profile", "add", "\udcff")

    _one_sentence(result, "Invalid value for 'NAME': '\\xff' is not valid UTF-8")


def test_a_password_on_standard_input_that_is_not_utf8_is_refused(postroom_cli: Cli, tmp_path: Path) -> None:
    given = tmp_path / "password"
    given.write_bytes(b"caf\xe9\n")
    with given.open("rb") as stdin:
        result = PostroomProcess(
            postroom_cli.database_url,
            "profile",
            "add",
            "p",
            "--username",
            "u",
            "--password-stdin",
            stdin=stdin,
        ).finish()

    _one_sentence(result, "The password on standard input (--password-stdin) is not valid UTF-8.")


def test_an_attachment_whose_file_name_is_not_utf8_is_refused_naming_it(
    app: Postroom, postroom_cli: Cli, tmp_path: Path
) -> None:
    ticket_id = Desk(app).setup().ticket(1)
    attachment = Path(os.fsdecode(bytes(tmp_path) + b"/r\xe9sum\xe9.pdf"))
    attachment.write_bytes(b"%PDF-1.4\n")

    result = postroom_cli.run_process(
        "ticket", "reply", str(ticket_id), "--body", "Hi", "--attach", str(attachment)
    )

    _one_sentence(result, "Invalid value for '--attach'", "r\\xe9sum\\xe9.pdf' is not valid UTF-8")


@pytest.mark.parametrize(
    "args",
    [
        ["ticket", "show", "99999999999999999999"],
        ["rule", "delete", "99999999999999999999"],
        ["ticket", "list", "--contact-center", "99999999999999999999"],
        ["outbox", "list", "--ticket", "9223372036854775808"],
    ],
    ids=["ticket-show", "rule-delete", "contact-center", "outbox-ticket"],
)
def test_an_id_beyond_64_bits_is_refused_in_one_sentence(postroom_cli: Cli, args: list[str]) -> None:
    result = postroom_cli.run(*args)

    _one_sentence(result, "is not in the range 1<=x<=9223372036854775807")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+pg8000://clerk:secret@localhost/postroom",
            "The database URL 'postgresql+pg8000://clerk:***@localhost/postroom' needs the Python module "
            "'pg8000', which is not installed; use the installed driver with "
            "'postgresql+psycopg2://clerk:***@localhost/postroom'",
        ),
        (
            "mysql://clerk@localhost/postroom",
            "needs the Python module 'MySQLdb', which is not installed; postroom supports SQLite",
        ),
    ],
    ids=["postgresql-driver-missing", "mysql"],
)
def test_a_database_url_whose_driver_is_missing_says_which_url_to_use(url: str, expected: str) -> None:
    result = Cli(url).run("ticket", "list")

    _one_sentence(result, expected)
    assert "secret" not in result.stderr


def test_a_data_folder_that_is_a_file_is_refused_in_one_sentence(
    postroom_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = postroom_home / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("POSTROOM_HOME", str(not_a_folder))

    result = Cli("").run_process("ticket", "list")  # no database URL: the default SQLite file in the home

    _one_sentence(result, f"$POSTROOM_HOME ({not_a_folder}) cannot be used", "it is a file, not a folder")


def test_a_data_folder_inside_a_file_is_refused_in_one_sentence(
    postroom_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (postroom_home / "file").write_text("")
    monkeypatch.setenv("POSTROOM_HOME", str(postroom_home / "file" / "home"))

    result = Cli("").run_process("profile", "list")

    _one_sentence(result, "cannot be used as postroom's data folder: Not a directory")


def test_a_demo_home_inside_a_file_is_refused_in_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")

    result = Cli("").run_process("demo", "--home", str(tmp_path / "file" / "demo"))

    _one_sentence(result, "The demo home", "cannot be made or used: Not a directory")


def test_ask_password_without_a_terminal_says_to_use_password_stdin(postroom_cli: Cli) -> None:
    result = PostroomProcess(
        postroom_cli.database_url,
        "profile",
        "add",
        "p",
        "--username",
        "u",
        "--ask-password",
        stdin=subprocess.DEVNULL,
    ).finish()

    _one_sentence(result, "--ask-password found no terminal", "--password-stdin")
