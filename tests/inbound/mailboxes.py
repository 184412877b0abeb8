"""What the inbound tests share: profiles on the test servers made through the CLI, and what got stored."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from sqlalchemy import func, select

from postroom.core.app import Postroom
from postroom.core.data.models import Direction, FetchLedger, MediaProfile, Message
from tests.servers.cli import Cli
from tests.servers.dovecot import Dovecot


def add_dovecot_profile(
    cli: Cli,
    dovecot: Dovecot,
    user: str,
    protocol: str,
    *options: str,
    name: str = "support",
    password: str | None = None,
    tls_verify: bool = False,
) -> None:
    """``postroom profile add`` for ``user``'s inbox on the test Dovecot over ``protocol``.

    Verification is off unless asked for, because the test server's certificate is self-signed.
    The password goes in on standard input, as an operator's script would give it.
    """
    cli.ok(
        "profile",
        "add",
        name,
        "--username",
        user,
        "--password-stdin",
        "--fetch-protocol",
        protocol,
        "--incoming-host",
        dovecot.host,
        "--incoming-port",
        str(dovecot.port_for(protocol)),
        *([] if tls_verify else ["--no-tls-verify"]),
        *options,
        input=(dovecot.passwords[user] if password is None else password) + "\n",
    )


def numbered_mail(number: int, *, date: datetime | None = None, tag: str = "mail") -> bytes:
    """A small mail whose Message-ID says which one it is: ``<tag-number@example.org>``."""
    lines = [
        f"From: Customer {number} <customer{number}@example.org>",
        "To: support@example.test",
        f"Subject: Question {number}",
        *([f"Date: {format_datetime(date)}"] if date else []),
        f"Message-ID: <{tag}-{number}@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(lines) + f"\r\n\r\nHello, this is mail {number}.\r\n").encode()


def message_id_of(raw: bytes) -> str:
    value = email.message_from_bytes(raw, policy=email.policy.compat32)["Message-ID"]
    return str(value).strip().strip("<>")


def stored_message_ids(database_url: str, profile: str = "support") -> Counter[str]:
    """How often each Message-ID was stored as an inbound message of ``profile``."""
    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            ids = session.scalars(
                select(Message.message_id)
                .join(MediaProfile, MediaProfile.id == Message.media_profile_id)
                .where(MediaProfile.name == profile, Message.direction == Direction.INBOUND)
            ).all()
    finally:
        app.dispose()
    return Counter(i or "" for i in ids)


def ledger_size(database_url: str, profile: str = "support") -> int:
    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(FetchLedger)
                    .join(MediaProfile, MediaProfile.id == FetchLedger.media_profile_id)
                    .where(MediaProfile.name == profile)
                )
                or 0
            )
    finally:
        app.dispose()


def fetch_reports(cli: Cli, *args: str) -> dict[str, dict[str, Any]]:
    """``postroom fetch --json``: each profile's report by profile name."""
    result = cli.run("fetch", "--json", *args)
    assert result.exit_code in (0, 1), result.stderr
    return {report["profile"]: report for report in result.json()}
