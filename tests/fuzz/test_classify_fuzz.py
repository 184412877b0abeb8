"""The send-error classifier under generated server replies: always a category, codes only from the first line."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from postroom.core.contract.protocols import SendFailure
from postroom.core.contract.retry import ErrorCategory
from postroom.core.outbound.classification import category_for_enhanced_status, parse_enhanced_status
from postroom.plugins.policies.classifier import classify_send_failure

CODE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
KINDS = st.sampled_from(["protocol", "connection", "unknown-host", "tls", "auth", "internal"])
#: Pieces of SMTP replies, so that generated text often holds codes, reply codes and line breaks.
REPLY_PIECES = st.sampled_from(
    ["550", "550-", "550 ", "451 ", "5.1.1", "4.7.0", "2.0.0", "5.7.", "9.9.9", "5.1234.1", " ", "-", ".",
     "\r\n", "\n", "v1.2.3", "user@5.1.1.example", "Mailbox unavailable", "(535 5.7.8 Bad)", "\x00", "\u2028"]
)
replies = st.one_of(st.text(max_size=120), st.lists(st.one_of(REPLY_PIECES, st.text(max_size=5)), max_size=20).map("".join))
# A first line: no character str.splitlines() breaks at.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
first_lines = st.text(st.characters(exclude_characters=LINE_BREAKS), max_size=60) | st.lists(
    REPLY_PIECES.filter(lambda p: not any(c in LINE_BREAKS for c in p)), max_size=8
).map("".join)


@given(replies, st.one_of(st.none(), st.integers(min_value=-1, max_value=1000)), KINDS)
@example("550 5.1.1 <a@b.example>: Recipient address rejected", 550, "protocol")
@example("421-4.7.0 Try again later\r\n421 4.7.0 Try again later", 421, "protocol")
def test_any_server_reply_gets_a_category_and_never_raises(text: str, reply_code: int | None, kind: str) -> None:
    code = parse_enhanced_status(text)
    assert code is None or CODE.fullmatch(code)
    category = category_for_enhanced_status(code)
    assert category is None or isinstance(category, ErrorCategory)
    assert isinstance(classify_send_failure(SendFailure(text, reply_code=reply_code, kind=kind)), ErrorCategory)  # type: ignore[arg-type]


@given(first_lines, replies)
@example("550 Mailbox unavailable", "550-5.1.1 later line")
@example("", "5.1.1 on the second line")
def test_the_enhanced_code_comes_from_the_first_line_only(first: str, rest: str) -> None:
    if not first.strip():
        return  # a blank first line is no line: the reply starts on the next one
    assert parse_enhanced_status(first + "\r\n" + rest) == parse_enhanced_status(first)
    code = parse_enhanced_status(first)
    assert code is None or code in first


@given(st.text(max_size=20))
@example("5.99999999999999999999.1")
@example("5.٣.1")  # an Arabic-Indic digit passes str.isdigit()
def test_any_code_string_gives_a_category_or_none(code: str) -> None:
    category = category_for_enhanced_status(code)
    assert category is None or isinstance(category, ErrorCategory)
