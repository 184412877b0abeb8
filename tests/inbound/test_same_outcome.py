"""The same mail ends the same way on SQLite and PostgreSQL, however long its values.

SQLite stores a string of any length in a ``VARCHAR(255)``, PostgreSQL refuses it; every value
a mail brings is fitted to its column, or (an address no server would take) not kept at all.
"""

from __future__ import annotations

import mailbox
from pathlib import Path

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import Customer, CustomerEmail, Message, MessageStatus
from tests.inbound.mailboxes import fetch_reports
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import make_mail

LONG_ADDRESS = "a" * 300 + "@example.org"
LONG = "x" * 1200


def _fetch(cli: Cli, app: Postroom, folder: Path, mails: list[bytes]) -> dict[str, int]:
    box = mailbox.Maildir(folder, create=True)
    for raw in mails:
        box.add(raw)
    cli.ok("profile", "add", "support", "--fetch-protocol", "maildir", "--incoming-folder", str(folder))
    Desk(app).route("support")
    report = fetch_reports(cli)["support"]
    assert report["error"] is None
    return report


def test_a_from_address_over_255_characters_is_ticketed_without_it_on_both_databases(
    postroom_cli: Cli, app: Postroom, tmp_path: Path
) -> None:
    mail = make_mail("Long sender", sender=f"Long Sender <{LONG_ADDRESS}>", cc=f"<{LONG_ADDRESS}>")

    report = _fetch(postroom_cli, app, tmp_path / "Maildir", [mail])

    assert (report["stored"], report["quarantined"]) == (1, 0)
    with app.sessions() as session:
        [(status, from_address, ticket)] = session.execute(
            select(Message.status, Message.from_address, Message.ticket_id)
        ).all()
        addresses = session.scalars(select(CustomerEmail.address)).all()
    assert (status, from_address) == (MessageStatus.TICKETED, None) and ticket is not None
    assert LONG_ADDRESS not in addresses


def test_every_header_too_long_for_its_column_is_ticketed_on_both_databases(
    postroom_cli: Cli, app: Postroom, tmp_path: Path
) -> None:
    name = "N" * 300
    mails = [
        make_mail(LONG, sender=f'"{name}" <carla@example.org>'),
        make_mail("Long id", message_id=f"{LONG}@example.org", in_reply_to=f"{LONG}@example.org"),
        make_mail("Long reply-to", headers={"Reply-To": f"<{LONG_ADDRESS}>"}, to=f"<{LONG_ADDRESS}>"),
        make_mail("Long local part", sender=f"<{'b' * 240}@example.org>"),
    ]

    report = _fetch(postroom_cli, app, tmp_path / "Maildir", mails)

    assert (report["stored"], report["quarantined"]) == (len(mails), 0)
    with app.sessions() as session:
        statuses = session.scalars(select(Message.status)).all()
        names = session.scalars(select(Customer.name)).all()
        addresses = session.scalars(select(CustomerEmail.address)).all()
    assert statuses == [MessageStatus.TICKETED] * len(mails)
    assert name[:255] in names
    assert f"{'b' * 240}@example.org" in addresses
