"""The builder under generated drafts: any text a draft may hold builds a mail with CR/LF-free headers
that parses back, or is refused in one sentence naming what."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from postroom.core.contract.drafts import OutgoingAttachment, OutgoingDraft
from postroom.core.contract.errors import UserError
from postroom.core.data.validation import check_address
from postroom.core.mail.build import build_message, header_text, text_to_html
from postroom.core.mail.parse import parse_mail
from postroom.core.mail.subjects import reply_subject
from postroom.core.outbound.compose import new_message_id
from tests.fuzz.sentences import is_one_sentence
from tests.fuzz.strategies import addresses

#: Any text at all, line breaks, NUL and escape sequences included.
anything = st.text(max_size=80)
maybe_hostile_address = st.one_of(addresses, addresses.map(lambda a: a + "\r\nBcc: x@evil.example"), anything)
#: Found by the long fuzz run: the stdlib folded it into two encoded words split at the blank.
LOST_BLANK = "Re: 0000000" + "\x80" * 6 + "\U00010000" * 4 + " 000 \x80 \x80"
HEADER_NAMES = st.one_of(st.sampled_from(["X-Ticket", "X-Campaign", "Bcc", "X:Bad", "X Bad", ""]), anything)


def _draft(**values: object) -> OutgoingDraft:
    base: dict[str, object] = {
        "ticket_id": 7, "profile_id": 1, "from_name": "Support", "from_address": "support@acme.test",
        "to": ["carla@example.org"], "cc": [], "subject": "Re: Help", "text": "Hello.",
        "html": "<p>Hello.</p>", "message_id": "postroom.7.1@acme.test",
        "date": datetime(2031, 3, 4, tzinfo=UTC),
    }
    return OutgoingDraft(**{**base, **values})  # type: ignore[arg-type]


def _headers_are_single_lines(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line
        assert line[:1] in (b" ", b"\t") or b":" in line, line  # a field or a folded continuation


@given(
    subject=anything, text=anything, from_name=st.one_of(st.none(), anything),
    to=st.lists(maybe_hostile_address, min_size=1, max_size=3), cc=st.lists(maybe_hostile_address, max_size=2),
    reply_to=st.one_of(st.none(), maybe_hostile_address),
    headers=st.dictionaries(HEADER_NAMES, anything, max_size=2),
    filename=st.one_of(st.none(), anything), content_type=anything,
)
@example(subject="Re: x\r\nBcc: all@evil.example", text="", from_name="A\nB", to=["a@b.example"], cc=[],
         reply_to=None, headers={}, filename=None, content_type="")
@example(subject="", text="", from_name=None, to=["a@b.example\r\nBcc: x@evil.example"], cc=[],
         reply_to=None, headers={"X-Ticket": "1\r\nBcc: x@evil.example"}, filename="a\r\nb.pdf",
         content_type="text/plain\r\nX: y")
@example(subject="", text="", from_name=None, to=[":"], cc=[], reply_to=None, headers={}, filename=None,
         content_type="")  # was a HeaderParseError traceback, not a sentence
@example(subject=LOST_BLANK, text="", from_name=None, to=["a@b.example"], cc=[], reply_to=None, headers={},
         filename=None, content_type="")  # the stdlib's folding lost the blank before the last "\x80"
def test_any_draft_builds_a_mail_whose_headers_carry_no_line_break_and_that_parses_back(
    subject: str, text: str, from_name: str | None, to: list[str], cc: list[str], reply_to: str | None,
    headers: dict[str, str], filename: str | None, content_type: str,
) -> None:
    attachments = [OutgoingAttachment(filename, content_type, b"%PDF")] if filename is not None else []
    draft = _draft(subject=subject, text=text, html=text_to_html(text), from_name=from_name, to=to, cc=cc,
                   reply_to=reply_to, headers=headers, attachments=attachments)
    try:
        raw = build_message(draft).as_bytes()
    except UserError as error:
        assert is_one_sentence(str(error)), str(error)
        return
    _headers_are_single_lines(raw)
    parsed = parse_mail(raw)
    assert parsed.subject == header_text(subject).strip()
    assert parsed.from_address == "support@acme.test"
    assert parsed.message_id == "postroom.7.1@acme.test"
    assert [h.lower() for h in parsed.headers].count("bcc") == sum(
        name.lower() == "bcc" for name in headers
    )


@given(ticket_subject=anything, prefix=st.one_of(st.none(), anything), token=st.one_of(st.none(), anything))
@example(ticket_subject="", prefix=None, token="\x00")  # went out as a raw NUL in the Subject header
def test_a_reply_subject_from_any_ticket_subject_builds_into_one_header_line(
    ticket_subject: str, prefix: str | None, token: str | None
) -> None:
    subject = reply_subject(ticket_subject, prefix, token)
    raw = build_message(_draft(subject=subject)).as_bytes()
    _headers_are_single_lines(raw)
    assert parse_mail(raw).subject == header_text(subject).strip()


@given(subject=st.text(max_size=400))
@example(subject=LOST_BLANK)
@example(subject="=?utf-8?q?not_an_encoded_word?= " + "x" * 200 + " \u00e9" * 40)
def test_any_subject_folds_into_lines_of_at_most_78_characters_that_every_decoder_reads_back_exactly(
    subject: str,
) -> None:
    raw = build_message(_draft(subject=subject)).as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith(b"Subject:"))
    end = next((i for i in range(start + 1, len(head)) if head[i][:1] not in (b" ", b"\t")), len(head))
    assert all(len(line) <= 78 and line.isascii() for line in head[start:end])
    expected = header_text(subject).strip()
    assert parse_mail(raw).subject == expected
    assert str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"]) == expected


@given(ticket_id=st.integers(min_value=1, max_value=2**63 - 1), sender=st.one_of(addresses, anything))
@example(ticket_id=1, sender="0\r0")
def test_a_new_message_id_is_one_ascii_token_for_any_send_from_address_a_profile_takes(
    ticket_id: int, sender: str
) -> None:
    try:
        sender = check_address(sender, "send-from address")
    except UserError:
        return  # a profile never holds it
    message_id = new_message_id(ticket_id, sender)
    assert message_id.isascii() and not any(c.isspace() for c in message_id) and "@" in message_id
