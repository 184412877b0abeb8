"""The maildir protocol: a local Maildir read as a mailbox and written as the sink for sent mail."""

from __future__ import annotations

import mailbox
import os
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from postroom.core.contract.protocols import ConnectionSettings, ProtocolError, SendFailure
from postroom.plugins.protocols import maildir
from postroom.plugins.protocols.maildir import MaildirProtocol
from tests.support.mail import make_mail


def settings(folder: Path | None) -> ConnectionSettings:
    return ConnectionSettings(
        profile_id=1, profile_name="demo", host=None, port=None, username=None,
        folder=str(folder) if folder else None,
    )


def filled_maildir(path: Path, mails: list[bytes]) -> list[str]:
    """A Maildir holding ``mails``, delivered a second apart in that order; their keys."""
    box = mailbox.Maildir(path, factory=None, create=True)
    keys = [box.add(mail) for mail in mails]
    start = time.time() - len(mails)
    for n, key in enumerate(keys):
        file = path / "new" / key
        os.utime(file, (start + n, start + n))
    return keys


def test_maildir_is_a_local_protocol_that_fetches_sends_and_keeps_the_sent_copy() -> None:
    assert [cls.NAME for cls in maildir.postroom_register_protocols()] == ["maildir"]
    assert MaildirProtocol.CAN_FETCH and MaildirProtocol.CAN_SEND
    assert not MaildirProtocol.NEEDS_HOST and MaildirProtocol.DEFAULT_PORT is None
    assert MaildirProtocol.NEEDS_FOLDER and MaildirProtocol.DEFAULT_FOLDER is None  # the folder is its path
    assert MaildirProtocol.KEEPS_SENT_COPY


def test_maildir_lists_fetches_and_deletes_mail_oldest_first(tmp_path: Path) -> None:
    mails = [make_mail(f"Order {n}") for n in range(3)]
    keys = filled_maildir(tmp_path / "in", mails)

    with MaildirProtocol().open_mailbox(settings(tmp_path / "in")) as box:
        assert [ref.key for ref in box.list_mail(None)] == keys
        assert [mail.raw for mail in box.fetch(keys)] == mails
        box.delete([keys[0]])
        assert [ref.key for ref in box.list_mail(None)] == keys[1:]


def test_mail_a_reader_moved_to_cur_with_flags_keeps_its_key(tmp_path: Path) -> None:
    (key,) = filled_maildir(tmp_path / "in", [make_mail()])
    (tmp_path / "in" / "new" / key).rename(tmp_path / "in" / "cur" / f"{key}:2,S")

    with MaildirProtocol().open_mailbox(settings(tmp_path / "in")) as box:
        assert [ref.key for ref in box.list_mail(None)] == [key]
        assert [mail.key for mail in box.fetch([key])] == [key]


def test_since_filters_by_delivery_time(tmp_path: Path) -> None:
    keys = filled_maildir(tmp_path / "in", [make_mail("Old"), make_mail("New")])
    ten_days_ago = time.time() - 10 * 86400
    os.utime(tmp_path / "in" / "new" / keys[0], (ten_days_ago, ten_days_ago))

    with MaildirProtocol().open_mailbox(settings(tmp_path / "in")) as box:
        assert [ref.key for ref in box.list_mail(date.today() - timedelta(days=3))] == [keys[1]]
        assert [ref.key for ref in box.list_mail(date.today() - timedelta(days=10))] == keys


def test_delete_removes_exactly_the_given_mails_and_ignores_unknown_keys(tmp_path: Path) -> None:
    keys = filled_maildir(tmp_path / "in", [make_mail(f"Mail {n}") for n in range(4)])

    with MaildirProtocol().open_mailbox(settings(tmp_path / "in")) as box:
        box.delete([keys[1], keys[2], "no-such-key"])
        assert [ref.key for ref in box.list_mail(None)] == [keys[0], keys[3]]
        assert [mail.key for mail in box.fetch(keys)] == [keys[0], keys[3]]


def test_a_missing_maildir_is_reported_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as missing:
        MaildirProtocol().open_mailbox(settings(tmp_path / "nowhere"))

    assert missing.value.kind == "folder"
    assert str(tmp_path / "nowhere") in str(missing.value)
    assert not (tmp_path / "nowhere").exists()


def test_a_profile_without_incoming_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as missing:
        MaildirProtocol().open_mailbox(settings(None))

    assert missing.value.kind == "folder"
    assert "'demo'" in str(missing.value)


def test_send_writes_the_raw_mail_into_new_and_creates_the_maildir(tmp_path: Path) -> None:
    sent = make_mail("Re: Order 1")

    with MaildirProtocol().open_sender(settings(tmp_path / "sent")) as sender:
        report = sender.send("support@example.test", ["customer@example.org"], sent)

    assert report.refused == {}
    assert [path.read_bytes() for path in (tmp_path / "sent" / "new").iterdir()] == [sent]
    assert list((tmp_path / "sent" / "tmp").iterdir()) == []


def test_send_into_an_existing_empty_directory_makes_it_a_maildir(tmp_path: Path) -> None:
    (tmp_path / "sent").mkdir()

    with MaildirProtocol().open_sender(settings(tmp_path / "sent")) as sender:
        sender.send("support@example.test", ["customer@example.org"], make_mail())

    assert len(list((tmp_path / "sent" / "new").iterdir())) == 1


def test_send_delivers_to_every_recipient_whatever_the_address(tmp_path: Path) -> None:
    # The demo's sink turns these away (postroom.demo.sink); a plain Maildir has no one to refuse.
    recipients = ["customer@shop.invalid", "refuse-me@example.org", "busy.erin@example.org"]
    sent = make_mail("Re: Order 1")

    with MaildirProtocol().open_sender(settings(tmp_path / "sent")) as sender:
        report = sender.send("support@example.test", recipients, sent)

    assert report.refused == {}
    assert [path.read_bytes() for path in (tmp_path / "sent" / "new").iterdir()] == [sent]


def test_a_sender_without_outgoing_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SendFailure) as failed:
        MaildirProtocol().open_sender(settings(None))

    assert failed.value.kind == "folder"


def test_append_writes_a_copy_into_the_named_maildir(tmp_path: Path) -> None:
    filled_maildir(tmp_path / "in", [])
    copy = make_mail("Re: Order 1")

    with MaildirProtocol().open_mailbox(settings(tmp_path / "in")) as box:
        box.append(copy, str(tmp_path / "sent"))
        assert box.list_mail(None) == []

    sent = mailbox.Maildir(tmp_path / "sent", factory=None, create=False)
    assert [sent.get_bytes(key) for key in sent.iterkeys()] == [copy]
