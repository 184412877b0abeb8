"""The hostile corpus through the real fetch path (a Maildir, the Fetcher) on SQLite and PostgreSQL:
every mail is stored or quarantined with a reason, none stops the batch, and a good mail after them
is ticketed."""

from __future__ import annotations

import mailbox
import os
import time
from pathlib import Path

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import Message, MessageStatus
from postroom.core.data.profiles import get_profile
from postroom.core.inbound.fetch import Fetcher
from tests.fuzz.hostile_mails import MAILS
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import make_mail


def test_every_hostile_mail_is_stored_or_quarantined_and_the_good_mail_after_them_is_ticketed(
    postroom_cli: Cli, app: Postroom, tmp_path: Path
) -> None:
    assert len(MAILS) >= 40
    good = make_mail("A good question after the hostile ones", message_id="good-after@example.org")
    folder = tmp_path / "Maildir"
    box = mailbox.Maildir(folder, create=True)
    keys = [box.add(raw) for raw in [*MAILS.values(), good]]
    start = time.time() - len(keys)
    for n, key in enumerate(keys):  # delivered one second apart, the good mail last
        os.utime(folder / "new" / key, (start + n, start + n))
    postroom_cli.ok("profile", "add", "support", "--fetch-protocol", "maildir", "--incoming-folder", str(folder),
                    "--delete-on-fetch")
    Desk(app).route("support")
    with app.sessions() as session:
        profile_id = get_profile(session, "support", DEFAULT_CONTACT_CENTER_ID).id

    report = Fetcher(app).fetch_profile(profile_id)

    assert report.error is None
    assert report.fetched == len(keys)
    assert report.stored + report.duplicates + report.quarantined == len(keys)
    assert not list(folder.glob("new/*")) and not list(folder.glob("cur/*"))
    with app.sessions() as session:
        rows = session.execute(select(Message.message_id, Message.status, Message.reason)).all()
    quarantined = [row for row in rows if row.status == MessageStatus.QUARANTINED]
    assert len(quarantined) == report.quarantined >= 5  # the deep, slow and headerless ones at least
    assert all(row.reason and "\n" not in row.reason for row in quarantined)
    [(status,)] = [(row.status,) for row in rows if row.message_id == "good-after@example.org"]
    assert status == MessageStatus.TICKETED
