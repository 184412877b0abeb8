"""A customer's mail carrying terminal escapes (ESC sequences, OSC 8 links, BEL, bidi overrides) is
shown with those characters as readable escapes by every human-readable command, never raw (issue 11, 3).
"""

from __future__ import annotations

import json
import re
import unicodedata
from base64 import b64encode

from postroom.cli._text import one_line
from postroom.core.app import Postroom
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import make_mail

CLEAR_SCREEN = "\x1b[2J"
OSC8_LINK = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
SUBJECT = f"Refund{CLEAR_SCREEN} {OSC8_LINK} ring\x07 invoice\u202efdp.exe"
SENDER_NAME = "Carla\x1b[31m Red\u202e"
BODY = "Hello\x1b[2J\x07\u202e there\r\n"

#: What must never reach a terminal from data: C0 controls but newline, DEL, C1, bidi and zero-width.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _encoded_word(text: str) -> str:
    """``text`` as an RFC 2047 encoded word, the way a hostile mail carries control characters."""
    return f"=?utf-8?b?{b64encode(text.encode()).decode()}?="


def _hostile_mail() -> bytes:
    return make_mail(
        _encoded_word(SUBJECT),
        sender=f"{_encoded_word(SENDER_NAME)} <carla@example.org>",
        body=BODY,
    )


def _assert_shown_safely(output: str) -> None:
    raw = RAW_CONTROL.findall(output)
    assert not raw, f"raw control characters reached the terminal: {raw!r}\n{output!r}"


def test_ticket_list_show_and_unrouted_list_show_control_characters_as_escapes(
    app: Postroom, postroom_cli: Cli
) -> None:
    desk = Desk(app).setup()
    desk.deliver(_hostile_mail())
    desk.profile("unrouted-box", routed=False)
    desk.deliver(_hostile_mail(), "unrouted-box")

    listed = postroom_cli.run_process("ticket", "list")
    shown = postroom_cli.run_process("ticket", "show", "1")
    unrouted = postroom_cli.run_process("unrouted", "list")

    for result in (listed, shown, unrouted):
        assert result.exit_code == 0, result.stderr
        _assert_shown_safely(result.stdout)
        assert "Refund\\x1b[2J" in result.stdout
    assert "ring\\x07 invoice\\u202efdp.exe" in shown.stdout  # the full subject on the header line
    assert "\\x1b]8;;https://evil.example/\\x1b\\click me" in shown.stdout


def test_json_output_stays_the_same_json_with_every_control_character_escaped(
    app: Postroom, postroom_cli: Cli
) -> None:
    desk = Desk(app).setup()
    desk.deliver(_hostile_mail())

    result = postroom_cli.run_process("ticket", "show", "1", "--json")

    assert result.exit_code == 0, result.stderr
    _assert_shown_safely(result.stdout)
    assert json.loads(result.stdout)["subject"] == SUBJECT
    assert "\\u202e" in result.stdout and "\\u001b" in result.stdout


def test_an_error_quoting_a_typed_value_shows_its_escapes(postroom_cli: Cli) -> None:
    result = postroom_cli.run_process("ticket", "list", "--state", "\x1b]0;owned\x07")

    assert result.exit_code == 2
    _assert_shown_safely(result.stderr)
    assert "\\x1b]0;owned\\x07" in result.stderr


def test_cutting_a_cell_never_splits_an_escape() -> None:
    for filler in range(40, 48):
        cut = one_line("x" * filler + "\x1b" * 10, 48)
        assert cut.endswith("…") and len(cut) <= 48
        assert re.fullmatch(r"x+(\\x1b)*…", cut), cut


def _terminal_column(line: str, text: str) -> int:
    """The terminal column at which ``text`` starts in ``line``: CJK and fullwidth characters take two,
    a combining accent none."""
    before = line[: line.index(text)]
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
        for c in before
    )


def test_table_columns_line_up_on_a_terminal_when_cells_hold_wide_characters(
    app: Postroom, postroom_cli: Cli
) -> None:
    """A CJK character takes two terminal columns: counted as one, the columns after it slid right."""
    desk = Desk(app).setup()
    subjects = ["請確認訂單 4711", "Order 4711", "".join(chr(ord(c) + 0xFEE0) for c in "fullwidth"), "Café e\u0301 combined", "訂" * 40]
    for n, subject in enumerate(subjects):
        desk.deliver(make_mail(_encoded_word(subject), sender=f"c{n}@example.org", body="Hi\r\n"))

    listed = postroom_cli.run("ticket", "list")

    assert listed.exit_code == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert len(rows) == len(subjects)
    state_column = _terminal_column(header, "STATE")
    assert [_terminal_column(row, " open ") + 1 for row in rows] == [state_column] * len(subjects)
    assert any("訂" * 23 + "…" in row for row in rows)  # cut at 48 columns: 23 wide characters and "…"
