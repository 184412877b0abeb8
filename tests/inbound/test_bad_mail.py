"""Odd and broken mail delivered to a real Dovecot: each one is stored or quarantined, none is lost.

The mails are CPython's own ``test_email/data`` files (the same set tests/mail parses; some are
pictures and sounds, not mails) and hand-made breakage: bad charsets, missing headers, truncated
MIME, 2000-character header lines, NUL bytes. They are written straight into the user's Maildir,
as a local delivery agent would, because IMAP APPEND refuses NUL bytes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.routing import InboundVerdict
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import FetchLedger, LedgerOutcome, Message, MessageRaw, MessageStatus
from postroom.core.data.profiles import get_profile
from postroom.core.inbound.fetch import Fetcher
from tests.inbound.mailboxes import fetch_reports
from tests.servers.dovecot import MAIL_GID, MAIL_UID, Dovecot
from tests.support.cli import Cli
from tests.support.corpora import CPYTHON_SAMPLES
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail

LONG = "x" * 2000

BROKEN: dict[str, bytes] = {
    "unknown body charset": (
        b"From: a@example.org\r\nTo: support@example.test\r\nSubject: charset\r\n"
        b"Message-ID: <broken-1@example.org>\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xfc\xdfe \xe9t\xe9\r\n"
    ),
    "unknown charset in an encoded word": (
        b"From: =?x-klingon?Q?Worf?= <worf@example.org>\r\nTo: support@example.test\r\n"
        b"Subject: =?x-unknown?B?w6l0w6k=?= and =?utf-8?Q?caf=C3=A9?=\r\n"
        b"Message-ID: <broken-2@example.org>\r\n\r\nbody\r\n"
    ),
    "raw 8-bit headers": (
        b"From: J\xf6rg <joerg@example.org>\r\nSubject: \xc3\xa4rger \xff\xfe\r\n"
        b"Message-ID: <broken-3@example.org>\r\n\r\nbody\r\n"
    ),
    "no from, date, subject or message-id": b"To: support@example.test\r\n\r\nWho sent this?\r\n",
    "only a subject": b"Subject: lonely\r\n\r\n",
    "headers and no body": b"From: a@example.org\r\nMessage-ID: <broken-4@example.org>\r\n",
    "truncated multipart": (
        b"From: a@example.org\r\nMessage-ID: <broken-5@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="cut"\r\n\r\n--cut\r\nContent-Type: text/plain\r\n\r\n'
        b"first part\r\n--cut\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJc"
    ),
    "multipart without a boundary": (
        b"From: a@example.org\r\nMessage-ID: <broken-6@example.org>\r\n"
        b"Content-Type: multipart/alternative\r\n\r\nno parts here\r\n"
    ),
    "broken base64 and quoted-printable": (
        b"From: a@example.org\r\nMessage-ID: <broken-7@example.org>\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b"!!!not base64***\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=4\r\n--b--\r\n"
    ),
    "2000-character header lines": (
        f"From: a@example.org\r\nTo: {','.join(f'r{n}@example.test' for n in range(120))}\r\n"
        f"Subject: {LONG}\r\nX-Long: {LONG}\r\nMessage-ID: <broken-8@example.org>\r\n\r\nbody\r\n"
    ).encode(),
    "a 2000-character message-id": (
        f"From: a@example.org\r\nMessage-ID: <{LONG}@example.org>\r\n\r\nbody\r\n".encode()
    ),
    "NUL bytes in headers and body": (
        b"From: a@example.org\r\nSubject: nul\x00here\r\nMessage-ID: <broken-9@example.org>\r\n\r\n"
        b"before\x00after\r\n\x00\x00\r\n"
    ),
    "nothing but NUL bytes": b"\x00" * 64,
    "bare line feeds and a mbox From line": (
        b"From someone@example.org Mon Jan  1 00:00:00 2024\nFrom: a@example.org\n"
        b"Message-ID: <broken-10@example.org>\nSubject: lf\n\nbody\n"
    ),
    "binary garbage": bytes(range(256)) * 4,
}


def deliver_files(dovecot: Dovecot, user: str, raws: list[bytes]) -> None:
    """Write mails into ``user``'s Maildir as a delivery agent would: into tmp/, then renamed to new/."""
    dovecot.count(user)  # the first login makes Dovecot create the Maildir
    home = dovecot.base / "mail" / user
    for number, raw in enumerate(raws):
        name = f"{int(time.time())}.M{number}P{os.getpid()}.postroom-test"
        temporary = home / "tmp" / name
        temporary.write_bytes(raw)
        if os.geteuid() == 0:
            os.chown(temporary, MAIL_UID, MAIL_GID)
        temporary.rename(home / "new" / name)


def _stored(database_url: str) -> tuple[list[Any], list[Any]]:
    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            ledger = session.execute(select(FetchLedger.outcome, FetchLedger.message_pk)).all()
            messages = session.execute(
                select(Message.id, Message.status, Message.reason, MessageRaw.raw).join(
                    MessageRaw, MessageRaw.message_pk == Message.id
                )
            ).all()
    finally:
        app.dispose()
    return list(ledger), list(messages)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_cpython_test_mails_and_broken_mails_are_all_stored_or_quarantined(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, protocol: str
) -> None:
    user, _ = dovecot.new_user("broken")
    raws = [*CPYTHON_SAMPLES.values(), *BROKEN.values()]
    deliver_files(dovecot, user, raws)
    add_dovecot_profile(postroom_cli, dovecot, user, protocol, "--delete-on-fetch")

    report = fetch_reports(postroom_cli, "--batch-size", "16")["support"]

    assert report["error"] is None
    assert report["fetched"] == len(raws)
    assert report["stored"] + report["duplicates"] + report["quarantined"] == len(raws)
    assert dovecot.count(user) == 0
    ledger, messages = _stored(database_url)
    assert len(ledger) == len(raws)
    by_status = {
        status: [m for m in messages if m.status == status] for status in {m.status for m in messages}
    }
    quarantined = by_status.pop(MessageStatus.QUARANTINED)
    assert len(quarantined) == report["quarantined"]
    assert sum(len(m) for m in by_status.values()) == report["stored"]
    # Every mail has a message with its raw bytes: its own, or for a repeated mail (the same
    # Message-ID and content) the earlier one it duplicates.
    stored_pks = {m.id for m in messages}
    assert all(pk in stored_pks for _outcome, pk in ledger)
    assert sum(outcome == LedgerOutcome.DUPLICATE for outcome, _pk in ledger) == report["duplicates"]
    assert all(m.raw for m in messages if m.status != MessageStatus.QUARANTINED)

    listed = postroom_cli.ok("quarantine", "list", "--json").json()
    assert sorted(q["id"] for q in listed) == sorted(m.id for m in quarantined)
    assert all(q["reason"] and q["profile"] == "support" for q in listed)
    reasons = {q["reason"] for q in listed}
    assert "The data is not a mail: it has no mail headers." in reasons
    # The pictures and sounds among CPython's files are no mails.
    assert report["quarantined"] >= sum(not name.startswith("msg_") for name in CPYTHON_SAMPLES)


class ExplodingFilter:
    """An inbound filter plugin that fails on one subject, as a buggy third-party plugin would."""

    @hookimpl
    def postroom_inbound_filter(self, message: Any, profile: Any) -> InboundVerdict | None:
        if message.subject == "Question 3":
            raise RuntimeError("the filter broke")
        return None


def test_a_mail_that_breaks_a_plugin_is_quarantined_and_the_rest_of_the_batch_is_stored(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, tmp_path: Path
) -> None:
    user, _ = dovecot.new_user("plugin")
    dovecot.deliver_many(user, [numbered_mail(n) for n in range(6)])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--delete-on-fetch")
    app = Postroom(database_url, extra_plugins=[("exploding-filter", ExplodingFilter())])
    try:
        with app.sessions() as session:
            profile_id = get_profile(session, "support", DEFAULT_CONTACT_CENTER_ID).id

        report = Fetcher(app).fetch_profile(profile_id)
    finally:
        app.dispose()

    assert (report.fetched, report.stored, report.quarantined, report.error) == (6, 5, 1, None)
    assert dovecot.count(user) == 0
    [held] = postroom_cli.ok("quarantine", "list", "--json").json()
    assert held["subject"] == "Question 3"
    assert held["reason"] == "Plugin 'exploding-filter' failed on this mail: RuntimeError: the filter broke"
    assert len(postroom_cli.ok("unrouted", "list", "--json").json()) == 5


def test_signals_of_a_batch_a_plugin_broke_go_out_once_per_mail_and_after_the_commit(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("signals")
    dovecot.deliver_many(user, [numbered_mail(n) for n in range(6)])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--delete-on-fetch")
    app = Postroom(database_url, extra_plugins=[("exploding-filter", ExplodingFilter())])
    observer = Postroom(database_url)  # its own connection: sees only what was committed
    heard: list[tuple[str, int, str | None]] = []

    def on(name: str) -> Callable[..., None]:
        def receive(_sender: object, **kwargs: Any) -> None:
            with observer.sessions() as session:
                status = session.scalar(select(Message.status).where(Message.id == kwargs["message_pk"]))
            heard.append((name, kwargs["message_pk"], status))

        return receive

    receivers = {signal: on(signal.name) for signal in (events.message_unrouted, events.message_quarantined)}
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        with app.sessions() as session:
            profile_id = get_profile(session, "support", DEFAULT_CONTACT_CENTER_ID).id
        Fetcher(app).fetch_profile(profile_id)
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
        app.dispose()
        observer.dispose()

    # Mails 0-2 were processed in the savepoint the broken plugin rolled back, then again one by
    # one: still one signal each, sent when the observer could already read the final status.
    assert sorted(name for name, _, _ in heard) == ["message-quarantined"] + ["message-unrouted"] * 5
    assert len({pk for _, pk, _ in heard}) == 6
    assert {(name, status) for name, _, status in heard} == {
        ("message-unrouted", MessageStatus.UNROUTED),
        ("message-quarantined", MessageStatus.QUARANTINED),
    }


def test_a_header_nested_too_deeply_to_read_is_quarantined_with_one_log_line_and_no_traceback(
    app: Postroom, caplog: pytest.LogCaptureFixture
) -> None:
    """100,000 "(" in a Content-Type: the stdlib's recursive comment reader (met when the failure-mail
    check reads the type with policy.default) runs out of stack; that is the mail's fault, not a bug."""
    desk = Desk(app).setup()
    deep = (
        b"From: a@example.org\r\nTo: support@postroom.test\r\nSubject: deep\r\n"
        b"Message-ID: <deep@example.org>\r\nContent-Type: " + b"(" * 100_000 + b"\r\n\r\nbody\r\n"
    )
    with caplog.at_level(logging.INFO, logger="postroom"):
        quarantined = desk.deliver(deep)
        ticketed = desk.deliver(numbered_mail(1, tag="after-deep"))

    assert quarantined.status == MessageStatus.QUARANTINED
    assert quarantined.reason == "A header of this mail is nested too deeply to read."
    assert ticketed.ticket_id is not None
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"profile support: message {quarantined.id} quarantined: A header of this mail is nested too deeply to read."
    ]
