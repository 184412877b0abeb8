"""The parser under generated input: any bytes parse or are refused in one sentence; real mails round-trip."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from hypothesis import example, given
from hypothesis import strategies as st

from postroom.core.contract.mail import ParsedMail
from postroom.core.mail.decoding import decode_header_value, parse_addresses
from postroom.core.mail.parse import MailParseError, parse_mail
from tests.fuzz.sentences import is_one_sentence
from tests.fuzz.strategies import CHARSETS, FRAGMENTS, mail_like_bytes, structured_mails, written_mail

HEADER_NAMES = ["from", "to", "cc", "subject", "message-id", "content-type", "date", "x-unknown"]


def _parse_or_refuse(raw: bytes) -> ParsedMail | None:
    try:
        return parse_mail(raw)
    except MailParseError as error:
        assert is_one_sentence(str(error)), str(error)
        return None


def _squeeze(text: str | None) -> str:
    return " ".join((text or "").split())


@given(st.one_of(st.binary(max_size=400), mail_like_bytes))
@example(b"")
@example(b"\x00" * 8)
@example(b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=" + b"b" * 80 + b"\r\n\r\n--b")
@example(b"Subject: x\r\nContent-Type: text/plain; " + b";" * 1200 + b"\r\n\r\nbody")
def test_any_bytes_parse_or_are_refused_in_one_sentence(raw: bytes) -> None:
    parsed = _parse_or_refuse(raw)
    if parsed is None:
        return
    assert parsed.raw == raw
    for name in HEADER_NAMES:  # ParsedMail.header never raises, whatever the header holds
        value = parsed.header(name)
        assert value is None or isinstance(value, str)
    for text in (parsed.text, parsed.html, parsed.subject, parsed.from_name):
        assert text is None or "\x00" not in text


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(b"".join))
def test_mails_made_of_header_fragments_parse_or_are_refused_in_one_sentence(raw: bytes) -> None:
    _parse_or_refuse(b"From: a@b.example\r\n" + raw)


def _attachment_mail(from_name: str) -> tuple[bytes, EmailMessage, dict[str, object]]:
    message = EmailMessage(policy=SMTP)
    message.set_content(b"", maintype="application", subtype="octet-stream", filename="file.bin")
    fields = {"subject": "", "from_name": from_name, "from_address": "0@0.org", "to": ["0@0.org"],
              "message_id": "0@0.org"}
    return written_mail(message, fields)


@given(structured_mails())
# Found by the long run: the stdlib folds this name into two encoded words and drops the blank
# between them (RFC 2047 ignores blanks between words; the stdlib's own reader puts one back).
@example(_attachment_mail("00000000" + "\xa0" * 13 + "\u0800" * 3 + " \xa1"))
@example(_attachment_mail("\xa1()"))  # the parentheses inside the encoded word were cut as a comment
def test_a_well_formed_mail_parses_and_its_fields_round_trip(
    mail: tuple[bytes, EmailMessage, dict[str, object]],
) -> None:
    raw, message, fields = mail
    parsed = parse_mail(raw)

    assert parsed.message_id == fields["message_id"]
    assert parsed.from_address == fields["from_address"]
    # Blanks compared loosely: the stdlib's generator may drop one between two encoded words.
    assert "".join((parsed.from_name or "").split()) == "".join(str(fields["from_name"]).split())
    assert parsed.to == fields["to"]
    assert _squeeze(parsed.subject) == _squeeze(str(fields["subject"]))
    leaves = [part for part in message.walk() if not part.is_multipart()]
    attachments = [p for p in leaves if p.get_content_disposition() == "attachment"]
    assert len(parsed.attachments) == len(attachments)
    for part in leaves:
        if part.get_content_type() == "text/plain" and part.get_content_charset() == "utf-8":
            written = part.get_content().replace("\r\n", "\n").strip()
            assert written in (parsed.text or "")


@given(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(CHARSETS), st.text(max_size=12)), max_size=3).map(tuple),
)
@example("=?utf-8?B?w6k=?= =?x-klingon?Q?a?=", ())
@example("=?utf-16?B?2D3=?=", ("utf-16",))
@example("\udce9t\udce9", ("iso-8859-1",))
@example("g:" * 5000 + "a@b.example" + ";" * 5000, ())  # was a RecursionError out of parse_mail
def test_header_decoding_never_raises(value: str, hints: tuple[str, ...]) -> None:
    decoded = decode_header_value(value, hints)
    assert isinstance(decoded, str)
    for display, address in parse_addresses(value, hints):
        assert isinstance(display, str) and isinstance(address, str)
