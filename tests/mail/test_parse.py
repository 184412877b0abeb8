"""parse_mail on CPython's test mails, deliberately broken mails, encoded words and attachments."""

from __future__ import annotations

import base64
import contextlib
import json
import random
import time
from datetime import UTC, datetime

import pytest

from postroom.core.contract.mail import ParsedMail
from postroom.core.mail.parse import MAX_ADDRESSES, MailParseError, decode_header_value, parse_mail
from tests.support.mail import header_lines_mail as mail


def simple(*headers: str | bytes, body: bytes = b"Hello.\r\n") -> ParsedMail:
    return parse_mail(mail("From: Ann <ann@example.com>", "To: desk@example.com", *headers, body=body))


# --- unusable data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b" \r\n\r\n\t", "empty"),
        (b"\x00" * 64, "NUL"),
        (b"just some words\nand more words\n", "no mail headers"),
        (b"X-Custom: only a private header\n\nbody", "no mail headers"),
    ],
)
def test_data_that_is_not_a_mail_raises_a_one_sentence_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MailParseError, match=reason) as caught:
        parse_mail(raw)
    assert str(caught.value).count(".") >= 1 and "\n" not in str(caught.value)


# --- broken mails are salvaged ---------------------------------------------------------------------


def test_a_mail_without_from_date_or_subject_still_parses() -> None:
    parsed = parse_mail(mail("To: desk@example.com"))
    assert (parsed.from_address, parsed.from_name, parsed.date, parsed.subject) == (None, None, None, "")
    assert parsed.to == ["desk@example.com"]
    assert parsed.text == "Hello.\n"


def test_a_mail_without_from_is_attributed_to_its_reply_to() -> None:
    parsed = parse_mail(mail("To: desk@example.com", "Reply-To: <Someone@Example.com>"))
    assert parsed.from_address == "someone@example.com"


def test_an_unknown_charset_falls_back_to_utf8_then_cp1252() -> None:
    utf8 = simple("Content-Type: text/plain; charset=x-no-such-charset", body="Grüße\r\n".encode())
    latin = simple("Content-Type: text/plain; charset=x-no-such-charset", body="Grüße\r\n".encode("cp1252"))
    assert utf8.text == latin.text == "Grüße\n"


def test_a_body_labelled_utf8_that_is_latin1_is_read_as_cp1252() -> None:
    parsed = simple(
        "Content-Type: text/plain; charset=utf-8", body="Prix: 10 € \u2013 “net”".encode("cp1252")
    )
    assert parsed.text == "Prix: 10 € \u2013 “net”"


def test_utf8_cut_in_the_middle_of_a_character_keeps_the_rest_readable() -> None:
    data = ("Grüße " * 50).encode()[:-4]
    parsed = simple("Content-Type: text/plain; charset=utf-8", body=data)
    assert parsed.text is not None and parsed.text.startswith("Grüße Grüße") and "Ã" not in parsed.text


def test_truncated_mime_yields_the_parts_that_are_there() -> None:
    picture = base64.encodebytes(bytes(range(256)) * 8)
    raw = mail(
        "From: a@example.com",
        'Content-Type: multipart/mixed; boundary="XX"',
        body=b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n--XX\r\n"
        b"Content-Type: image/png; name=shot.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + picture[:700],
    )
    parsed = parse_mail(raw)
    assert parsed.text == "See attached."  # the line break before a boundary belongs to the boundary
    assert [(a.name, a.content_type) for a in parsed.attachments] == [("shot.png", "image/png")]
    assert 0 < parsed.attachments[0].size < 2048
    assert parsed.defects


def test_a_2000_character_subject_and_a_long_recipient_list_parse_whole() -> None:
    subject = "word " * 400
    recipients = ", ".join(f"User {i} <user{i}@example.com>" for i in range(300))
    parsed = simple(f"Subject: {subject}", f"Cc: {recipients}")
    assert parsed.subject == subject.strip()
    assert len(parsed.cc) == 300 and parsed.cc[-1] == "user299@example.com"


def test_nul_bytes_are_dropped_and_the_rest_is_read() -> None:
    parsed = parse_mail(b"From: a\x00@example.com\r\nSubject: he\x00llo\r\n\r\nbo\x00dy\r\n")
    assert (parsed.from_address, parsed.subject, parsed.text) == ("a@example.com", "hello", "body\n")
    assert "NUL bytes removed" in parsed.defects


def test_an_mbox_from_line_is_stripped() -> None:
    raw = b"From ann@example.com Mon Jan  1 00:00:00 2024\nFrom: ann@example.com\nSubject: hi\n\nbody\n"
    parsed = parse_mail(raw)
    assert (parsed.from_address, parsed.subject) == ("ann@example.com", "hi")


def test_a_byte_order_mark_or_blank_lines_before_the_headers_are_skipped() -> None:
    assert parse_mail(b"\xef\xbb\xbfFrom: ann@example.com\nSubject: bom\n\nbody\n").subject == "bom"
    assert parse_mail(b"\r\n\r\nFrom: ann@example.com\r\nSubject: blank\r\n\r\nbody").subject == "blank"


def test_a_from_header_with_a_blank_before_its_colon_is_not_an_mbox_line() -> None:
    assert parse_mail(b"From : Ann <ann@example.com>\nSubject: x\n\nbody\n").from_address == "ann@example.com"


def test_a_junk_line_before_the_headers_is_skipped() -> None:
    raw = b"---- Original email message ----\r\nFrom: ann@example.com\r\nSubject: Contact\r\n\r\nbody\r\n"
    assert parse_mail(raw).subject == "Contact"


def test_unindented_header_continuations_do_not_end_the_headers() -> None:
    raw = (
        b"Received: from a.example.com (1.1.1.1)\nby b.example.com with SMTP; 5 Apr 2017 07:45:30 -0000\n"
        b"From: Ann <ann@example.com>\nSubject: AW: One Net Business\n\nbody\n"
    )
    parsed = parse_mail(raw)
    assert (parsed.subject, parsed.from_address) == ("AW: One Net Business", "ann@example.com")


def test_mixed_and_doubled_line_endings_are_read_as_line_breaks() -> None:
    raw = b"From: ann@example.com\r\r\nSubject: mixed\nTo: desk@example.com\r\n\r\nline one\r\nline two\n"
    parsed = parse_mail(raw)
    assert (parsed.subject, parsed.to, parsed.text) == ("mixed", ["desk@example.com"], "line one\nline two\n")


def test_random_damage_never_raises_anything_but_mail_parse_error() -> None:
    base = mail(
        "From: =?utf-8?B?w4RubmE=?= <anna@example.com>",
        "Subject: =?iso-8859-1?Q?Gr=FC=DFe?=",
        'Content-Type: multipart/mixed; boundary="b"',
        body=b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHall\xc3\xb6\r\n--b\r\n"
        b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b\r\n"
        b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b"JVBERi0xLjQK\r\n--b--\r\n",
    )
    rng = random.Random(20240501)
    for _ in range(300):
        damaged = bytearray(base[: rng.randrange(1, len(base) + 1)])
        for _ in range(rng.randrange(0, 6)):
            if damaged:
                damaged[rng.randrange(len(damaged))] = rng.choice(b'\x00\r\n:;=?<>"\x80\xff-b')
        with contextlib.suppress(MailParseError):
            parse_mail(bytes(damaged))


def test_a_huge_header_block_parses_in_linear_time() -> None:
    headers = [f"X-Trace-{i}: {'x' * 60}" for i in range(20000)]
    raw = mail("From: a@example.com", *headers, f"To: {', '.join(f'u{i}@example.com' for i in range(5000))}")
    start = time.perf_counter()
    parsed = parse_mail(raw)
    assert time.perf_counter() - start < 5
    assert parsed.to == [f"u{i}@example.com" for i in range(MAX_ADDRESSES)]  # the rest stay in the raw mail


# --- encoded words and raw 8-bit headers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Subject: =?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=", "Grüße aus Köln"),
        (b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=", "Grüße aus Köln"),
        (b"Subject: =?utf-8?Q?a?= =?utf-8?Q?b?=  c", "ab  c"),
        # one UTF-8 character split across two words
        (b"Subject: =?utf-8?B?5pel5pys6Kqe44Gu44OG?= =?utf-8?B?44K544OI?=", "日本語のテスト"),
        # Shift_JIS bytes inside a word labelled ISO-2022-JP
        (b"Subject: =?ISO-2022-JP?B?g2OBW4OL?=", "ツール"),
        # GB2312 label on GBK (traditional) characters
        (b"Subject: =?GB2312?B?g8iRqsGmrmE=?=", "內應力產"),
        # iso-8859-1 label on cp1252 bytes (euro sign, curly quotes)
        (b"Subject: =?iso-8859-1?Q?=80_=93ok=94?=", "€ “ok”"),
        (b"Subject: =?x-unknown?Q?caf=C3=A9?=", "café"),
        (b"Subject: =?utf-8?B?R3LDvMOfZQ?=", "Grüße"),  # missing base64 padding
        (b"Subject: =?utf-8*de?Q?Stra=C3=9Fe?=", "Straße"),  # RFC 2231 language tag
        ("Subject: Nouveau message élégibilité".encode(), "Nouveau message élégibilité"),
        ("Subject: Grüße".encode("cp1252"), "Grüße"),
        (b"Subject: folded\r\n\tsubject", "folded\tsubject"),
    ],
)
def test_subjects_decode_whatever_the_encoding(header: bytes, expected: str) -> None:
    assert simple(header).subject == expected


def test_a_raw_gbk_subject_is_read_as_chinese_even_when_the_body_says_latin1() -> None:
    parsed = simple(
        b"Subject: " + "转发\uff1a整体提升企业服务水平".encode("gbk"),
        "Content-Type: text/plain; charset=iso-8859-1",
    )
    assert parsed.subject == "转发\uff1a整体提升企业服务水平"


def test_a_raw_shift_jis_subject_is_read_with_the_mails_japanese_charset() -> None:
    parsed = simple(b"Subject: " + "ツール".encode("cp932"), "Content-Type: text/plain; charset=iso-2022-jp")
    assert parsed.subject == "ツール"


@pytest.mark.parametrize(
    ("header", "address", "name"),
    [
        (
            b"From: =?Windows-1252?Q?Hans_B=C4KO?= =?iso-8859-15?q?Sch=F6nland?= <Me@Bogen.net>",
            "me@bogen.net",
            "Hans BÄKOSchönland",
        ),
        (
            b"From: =?iso-8859-1?Q?B=FCrling,=20Andreas?= <smith@example.com>",
            "smith@example.com",
            "Bürling, Andreas",
        ),
        (b"From: marc.smith@example.com (Marc Smith)", "marc.smith@example.com", "Marc Smith"),
        (
            b"From: MAILER-DAEMON (Mail Delivery System) <postmaster@example.com>",
            "postmaster@example.com",
            "MAILER-DAEMON",
        ),
        (b'From: "Yangzhou Lighting " <>, "LTD" <ly@example.com>', "ly@example.com", "LTD"),
        ("From: Ups Rémi <r@example.com>".encode(), "r@example.com", "Ups Rémi"),
        (
            b'From: "Smith, Karoline" <Karoline.Smith@Example.com>',
            "karoline.smith@example.com",
            "Smith, Karoline",
        ),
        (
            b"From: =?ISO-2022-JP?B?g2OBW4OLIEVYQU1QTEU=?= <bar@example.org>",
            "bar@example.org",
            "ツール EXAMPLE",
        ),
    ],
)
def test_senders_and_display_names_survive_broken_syntax(header: bytes, address: str, name: str) -> None:
    parsed = parse_mail(mail(header, "Subject: x"))
    assert (parsed.from_address, parsed.from_name) == (address, name)


def test_a_second_from_header_is_used_when_the_first_has_no_address() -> None:
    parsed = parse_mail(mail("From: [??????]", "From: =?utf-8?B?6YO955C5?= <ghg@example.cn>", "Subject: x"))
    assert (parsed.from_address, parsed.from_name) == ("ghg@example.cn", "都琹")


def test_decode_header_value_is_public_for_other_headers() -> None:
    assert decode_header_value("=?utf-8?Q?caf=C3=A9?= au lait") == "café au lait"


# --- the other fields -------------------------------------------------------------------------------


def test_message_ids_lose_brackets_and_blanks() -> None:
    parsed = simple(
        "Message-ID: < abc.123@example.com >",
        "In-Reply-To: <first@example.com> (Ann's message of Monday)",
        "References: <a@example.com>\r\n <b@example.com> <a@example.com>",
    )
    assert parsed.message_id == "abc.123@example.com"
    assert parsed.in_reply_to == "first@example.com"
    assert parsed.references == ["a@example.com", "b@example.com"]


def test_a_message_id_without_brackets_is_kept() -> None:
    assert (
        simple("Message-Id: 20180802145828.58E7@mail.example.cz").message_id
        == "20180802145828.58E7@mail.example.cz"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sat, 13 Sep 2003 10:37:26 -0400", datetime(2003, 9, 13, 14, 37, 26, tzinfo=UTC)),
        ("Fri,  6 Jan 2017 19:23:41 +0100 (CET)", datetime(2017, 1, 6, 18, 23, 41, tzinfo=UTC)),
        ("24 Sep 2018 10:22:54 -0000", datetime(2018, 9, 24, 10, 22, 54, tzinfo=UTC)),
        ("not a date at all", None),
        ("Fri, 31 Dec 9999 23:30:00 -0100", None),  # after year 9999 in UTC
    ],
)
def test_dates_are_utc_and_garbage_is_none(value: str, expected: datetime | None) -> None:
    assert simple(f"Date: {value}").date == expected


def test_recipients_are_lower_cased_and_listed_once() -> None:
    parsed = simple("Cc: Desk <DESK@example.com>, Bob <bob@example.com>", "Reply-To: Ann <Ann@Example.com>")
    assert parsed.cc == ["desk@example.com", "bob@example.com"]
    assert parsed.all_recipients == ["desk@example.com", "bob@example.com"]
    assert parsed.reply_to == ["ann@example.com"]
    assert simple("Bcc: undisclosed-recipients:;").to == ["desk@example.com"]


def test_auto_submitted_is_reported_lower_cased() -> None:
    assert simple("Auto-Submitted: Auto-Replied").auto_submitted == "auto-replied"
    assert simple().auto_submitted is None


def test_filters_get_decoded_headers_and_a_policy_default_message() -> None:
    parsed = simple(b"Subject: =?utf-8?Q?caf=C3=A9?=", "X-Spam-Flag: YES")
    assert parsed.header("x-spam-flag") == "YES"
    assert parsed.header("SUBJECT") == "café"
    assert parsed.header("X-Missing") is None
    assert parsed.headers["from"].addresses[0].username == "ann"
    assert json.dumps(parsed.header_all("to")) == '["desk@example.com"]'
    body = parsed.headers.get_body(("plain",))
    assert body is not None and body.get_content() == "Hello.\r\n"


def test_mime_nested_beyond_reason_is_refused_in_one_sentence() -> None:
    nesting = "".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(3000)
    )
    raw = mail("From: a@example.com", "Content-Type: multipart/mixed; boundary=b0", body=nesting.encode())
    with pytest.raises(MailParseError, match="nested too deeply"):
        parse_mail(raw)


# --- bodies and attachments -------------------------------------------------------------------------


def _nested_mail() -> bytes:
    inner = mail("From: c@example.com", "Subject: =?utf-8?Q?Bestellbest=C3=A4tigung?=", body=b"inner\r\n")
    return mail(
        "From: a@example.com",
        "Subject: nested",
        'Content-Type: multipart/mixed; boundary="outer"',
        body=b"--outer\r\n"
        b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        b"--alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable"
        b"\r\n\r\nGr=FC=DFe\r\n"
        b"--alt\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n"
        b'--rel\r\nContent-Type: text/html\r\n\r\n<html><head><meta charset="windows-1252"></head>'
        b"<body>\x93hi\x94</body></html>\r\n"
        b"--rel\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"P" * 300)
        + b"--rel--\r\n--alt--\r\n"
        b"--outer\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''Erkl%C3%A4rung.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"%PDF" * 100) + b"--outer\r\n"
        b'Content-Type: text/plain; name="=?utf-8?B?w6RuZGVydW5nLnR4dA==?="\r\n'
        b"Content-Disposition: attachment\r\n\r\nnotes\r\n"
        b'--outer\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename="Hofj\xe4ger.jpg"'
        b"\r\n\r\nJPEG\r\n"
        b"--outer\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--outer--\r\n",
    )


def test_bodies_come_from_the_first_inline_text_parts_with_their_charsets() -> None:
    parsed = parse_mail(_nested_mail())
    assert parsed.text == "Grüße"
    assert parsed.html is not None and "“hi”" in parsed.html


def test_attachments_are_listed_through_nested_multiparts_with_decoded_names_and_sizes() -> None:
    parsed = parse_mail(_nested_mail())
    listed = [(a.name, a.content_type, a.size) for a in parsed.attachments]
    assert listed[:4] == [
        (None, "image/png", 300),
        ("Erklärung.pdf", "application/pdf", 400),
        ("änderung.txt", "text/plain", 5),
        ("Hofjäger.jpg", "image/jpeg", 4),
    ]
    name, content_type, size = listed[4]
    assert (name, content_type) == ("Bestellbestätigung.eml", "message/rfc822")
    assert size > 50


def test_an_attached_mails_text_is_not_taken_for_the_body() -> None:
    raw = mail(
        "From: a@example.com",
        'Content-Type: multipart/mixed; boundary="b"',
        body=b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n",
    )
    parsed = parse_mail(raw)
    assert parsed.text is None
    assert [a.name for a in parsed.attachments] == ["inner.eml"]


def test_a_single_part_attachment_mail_has_no_body() -> None:
    parsed = simple(
        "Content-Type: application/pdf",
        "Content-Disposition: attachment; filename=scan.pdf",
        "Content-Transfer-Encoding: base64",
        body=base64.encodebytes(b"%PDF-1.4 data"),
    )
    assert (parsed.text, parsed.html) == (None, None)
    assert [(a.name, a.size) for a in parsed.attachments] == [("scan.pdf", 13)]
