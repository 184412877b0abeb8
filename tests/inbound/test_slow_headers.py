"""Headers crafted to keep the stdlib parser busy: the mail is quarantined with a reason, the batch goes on.

A parameter list of 200 000 empty parameters (or 100 000 semicolons in one quoted value) costs the
stdlib seconds, growing with the square of its length; the parser refuses it before reading it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import Message, MessageRaw, MessageStatus
from postroom.core.mail.parse import MailParseError, parse_mail
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
