"""Headers crafted to keep the stdlib parser busy: the mail is quarantined with a reason, the batch goes on.

A parameter list of 200 000 empty parameters (or 100 000 semicolons in one quoted value) costs the
stdlib seconds, growing with the square of its length; the parser refuses it before reading it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import Message, MessageRaw, MessageStatus
from postroom.core.mail import parse as parse_module
from postroom.core.mail.parse import MAX_ADDRESSES, MailParseError, parse_mail
from tests.inbound.mailboxes import fetch_reports
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail

HEAD = b"From: a@example.org\r\nTo: support@example.test\r\nSubject: slow\r\n"
SLOW: dict[str, bytes] = {
    "empty parameters": HEAD + b"Message-ID: <slow-1@example.org>\r\nContent-Type: text/plain"
    + b" ;" * 200_000 + b"\r\n\r\nbody\r\n",
    "semicolons in a quoted value": HEAD + b"Message-ID: <slow-2@example.org>\r\nContent-Type: text/plain;"
    + b' name="' + b";" * 100_000 + b'"\r\n\r\nbody\r\n',
    "a multipart boundary among them": HEAD + b"Message-ID: <slow-3@example.org>\r\n"
    b"Content-Type: multipart/mixed; boundary=XX" + b" ;" * 200_000 + b"\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XX--\r\n",
    "a disposition of an inner part": HEAD + b"Message-ID: <slow-4@example.org>\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n"
    b"Content-Disposition: attachment" + b" ;" * 200_000 + b"\r\n\r\nhi\r\n--XX--\r\n",
}  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", SLOW)
def test_a_header_too_long_to_read_is_refused_in_one_sentence_naming_it(name: str) -> None:
    with pytest.raises(MailParseError) as refused:
        parse_mail(SLOW[name])

    reason = str(refused.value)
    assert "header has more than 1000 parameters" in reason and reason.count(".") == 1
    assert ("Content-Disposition" if "disposition" in name else "Content-Type") in reason


def test_a_parameter_list_within_the_limit_is_still_read() -> None:
    raw = HEAD + b"Content-Type: text/plain; charset=utf-8" + b"; x=1" * 900 + b"\r\n\r\nHello\r\n"
    assert parse_mail(raw).text == "Hello\n"


@pytest.mark.timeout(300)
def test_slow_headers_are_quarantined_with_their_reason_and_the_rest_of_the_batch_is_stored(
    postroom_cli: Cli, app: Postroom, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("slow")
    good = [numbered_mail(n) for n in range(3)]
    dovecot.deliver_many(user, [good[0], *SLOW.values(), good[1], good[2]])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--delete-on-fetch")

    report = fetch_reports(postroom_cli, "--batch-size", "4")["support"]

    assert report["error"] is None
    assert (report["stored"], report["quarantined"], report["deleted"]) == (3, len(SLOW), 3 + len(SLOW))
    with app.sessions() as session:
        rows = session.execute(
            select(Message.status, Message.reason, MessageRaw.raw).join(
                MessageRaw, MessageRaw.message_pk == Message.id
            )
        ).all()
    quarantined = {bytes(raw): reason for status, reason, raw in rows if status == MessageStatus.QUARANTINED}
    assert quarantined.keys() == set(SLOW.values())
    assert all("more than 1000 parameters, too many to read." in r for r in quarantined.values())
    stored = [bytes(raw) for status, _reason, raw in rows if status != MessageStatus.QUARANTINED]
    assert sorted(stored) == sorted(good)
    assert dovecot.count(user) == 0


def _many_parts(count: int) -> bytes:
    """A mail of ``count`` tiny MIME parts: the stdlib's parser takes seconds over it (40,000 took 1.7 s
    here, growing faster than the count), while every header and part is within every bound."""
    return (
        HEAD + b"Message-ID: <many-parts@example.org>\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        + b"--XX\r\n\r\nx\r\n" * count + b"--XX--\r\n"
    )


@pytest.mark.timeout(300)
def test_a_mail_that_takes_longer_than_the_parse_time_limit_is_quarantined_and_the_next_is_stored(
    postroom_cli: Cli, app: Postroom, dovecot: Dovecot
) -> None:
    """A limit of half a second against a mail that would take many: the guard stops the parser."""
    user, _ = dovecot.new_user("slowparts")
    good = [numbered_mail(n, tag="beside-slow") for n in range(2)]
    slow = _many_parts(100_000)
    dovecot.deliver_many(user, [good[0], slow, good[1]])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--delete-on-fetch")

    report = fetch_reports(postroom_cli, "--parse-time-limit", "0.5")["support"]

    assert report["error"] is None
    assert (report["stored"], report["quarantined"], report["deleted"]) == (2, 1, 3)
    with app.sessions() as session:
        rows = session.execute(
            select(Message.status, Message.reason, MessageRaw.raw).join(
                MessageRaw, MessageRaw.message_pk == Message.id
            )
        ).all()
    quarantined = [(bytes(raw), reason) for status, reason, raw in rows if status == MessageStatus.QUARANTINED]
    assert quarantined == [(slow, "The mail took longer than the parse time limit of 0.5 s to read.")]
    stored = [bytes(raw) for status, _reason, raw in rows if status != MessageStatus.QUARANTINED]
    assert sorted(stored) == sorted(good)
    assert dovecot.count(user) == 0


@pytest.mark.parametrize("value", ["0", "0.01", "3601", "nan", "inf"])
def test_a_parse_time_limit_out_of_range_is_refused_in_one_sentence(postroom_cli: Cli, value: str) -> None:
    for command in ("fetch", "run"):
        result = postroom_cli.run(command, "--parse-time-limit", value)
        assert result.exit_code != 0
        assert "The parse time limit (seconds) must be between 0.1 and 3600, not" in result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_a_to_of_160000_addresses_is_read_up_to_the_first_thousand_and_kept_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stdlib reads an address in about 20 microseconds: 160,000 took seconds, per mail."""
    read: list[int] = []
    real = parse_module.parse_addresses

    def counting(value: str, hints: tuple[str, ...]) -> list[tuple[str, str]]:
        read.append(value.count("@"))
        return real(value, hints)

    monkeypatch.setattr(parse_module, "parse_addresses", counting)
    everyone = ", ".join(f"Person {n} <person{n}@example.org>" for n in range(160_000))
    cc = ", ".join(f"copy{n}@example.org" for n in range(10))
    raw = HEAD.replace(b"To: support@example.test", f"To: {everyone}\r\nCc: {cc}".encode()) + b"\r\nHello\r\n"

    parsed = parse_mail(raw)

    assert parsed.to == [f"person{n}@example.org" for n in range(MAX_ADDRESSES)]
    assert parsed.cc == [f"copy{n}@example.org" for n in range(10)]  # a short list is read whole
    assert f"more than {MAX_ADDRESSES} To addresses; only the first {MAX_ADDRESSES} read" in parsed.defects
    assert max(read) <= MAX_ADDRESSES  # the work is bounded, not only the result
    assert parsed.raw == raw and parsed.text == "Hello\n"


def test_several_to_headers_count_together_and_a_list_within_the_bound_is_read_whole() -> None:
    first = ", ".join(f"a{n}@example.org" for n in range(600))
    second = ", ".join(f"b{n}@example.org" for n in range(600))
    raw = HEAD.replace(b"To: support@example.test", f"To: {first}\r\nTo: {second}".encode()) + b"\r\nHi\r\n"
    parsed = parse_mail(raw)
    assert parsed.to == [f"a{n}@example.org" for n in range(600)] + [f"b{n}@example.org" for n in range(400)]
    assert any("To addresses" in defect for defect in parsed.defects)

    within = ", ".join(f'"Doe, {n}" <d{n}@example.org>' for n in range(400))  # 800 commas, 400 addresses
    raw = HEAD.replace(b"To: support@example.test", f"To: {within}".encode()) + b"\r\nHi\r\n"
    parsed = parse_mail(raw)
    assert parsed.to == [f"d{n}@example.org" for n in range(400)]
    assert not any("To addresses" in defect for defect in parsed.defects)
