"""The mbox protocol, tested as its author would: postroom.testing fetches a real mbox file."""

from __future__ import annotations

import mailbox
from pathlib import Path

from postroom.testing import make_desk


def write_mbox(path: Path, *subjects: str) -> None:
    box = mailbox.mbox(path)
    for number, subject in enumerate(subjects):
        message = mailbox.mboxMessage(
            f"From: customer{number}@example.org\nTo: support@postroom.test\n"
            f"Message-ID: <m{number}@example.org>\nSubject: {subject}\n\nHello {number}\n"
        )
        message.set_from(f"customer{number}@example.org Mon Nov 30 10:00:00 2026")
        box.add(message)
    box.flush()
    box.close()


def test_a_fetch_stores_every_mail_of_the_file_once(tmp_path: Path) -> None:
    path = tmp_path / "support.mbox"
    write_mbox(path, "First question", "Second question")
    with make_desk(fetch_protocol="mbox", incoming_folder=str(path)) as desk:
        first = desk.fetch()
        write_mbox(path, "Third question")  # appended: the first two keep their keys
        second = desk.fetch()
        assert (first.error, first.stored, second.stored, second.duplicates) == (None, 2, 1, 0)
        assert [t.subject for t in desk.tickets()] == ["First question", "Second question", "Third question"]


def test_delete_on_fetch_empties_the_file_after_the_mails_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "support.mbox"
    write_mbox(path, "Only question")
    with make_desk(fetch_protocol="mbox", incoming_folder=str(path), delete_on_fetch=True) as desk:
        report = desk.fetch()
        assert (report.stored, report.deleted) == (1, 1)
        assert len(mailbox.mbox(path)) == 0
        assert [m.subject for m in desk.messages()] == ["Only question"]


def test_a_missing_file_is_one_sentence_naming_it(tmp_path: Path) -> None:
    with make_desk(fetch_protocol="mbox", incoming_folder=str(tmp_path / "gone.mbox")) as desk:
        assert (
            desk.fetch().error
            == f"Profile 'support': the mbox file {str(tmp_path / 'gone.mbox')!r} does not exist."
        )
