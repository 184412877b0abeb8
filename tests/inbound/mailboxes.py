"""What the inbound tests share: what got stored, what a fetch reported, and a mail's Message-ID."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from postroom.core.app import Postroom
from postroom.core.data.models import Direction, FetchLedger, MediaProfile, Message
from tests.support.cli import Cli


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
