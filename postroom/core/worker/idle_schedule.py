"""What the scheduler asks of IDLE (core/worker/idle.py): which held profiles to fetch now, which to hold.

A profile that can be watched keeps this worker's lease after a successful cycle (docs/architecture.md,
"IDLE"); the scheduler then fetches it on news from the watcher and at its poll time, which
``claim_due_profiles`` no longer sees because this worker holds the lease.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError
from postroom.core.contract.protocols import MailWaiter
from postroom.core.data.db import is_outage
from postroom.core.data.idle_switch import idle_enabled
from postroom.core.data.models import MediaProfile
from postroom.core.servers import incoming_protocol, incoming_settings
from postroom.core.worker.idle import RENEW_EVERY, IdleWatcher, Opener


def watchable(session: Session, app: Postroom, profile: MediaProfile) -> bool:
    """Whether the profile's protocol can wait for new mail and its IDLE switch is on."""
    if not profile.can_fetch or profile.deleted_at is not None:
        return False
    try:
        plugin = incoming_protocol(profile, app.plugins)
    except UserError:
        return False
    return bool(plugin.CAN_WAIT_FOR_MAIL) and idle_enabled(session, profile.id)


def waiter_opener(app: Postroom) -> Opener:
    """The engine's way to open a watched profile's waiting connection: the loaded profile's settings."""

    def read(profile_id: int) -> tuple[str, Callable[[], MailWaiter | None]] | None:
        with app.sessions() as session:
            profile = session.get(MediaProfile, profile_id)
            if profile is None or profile.deleted_at is not None:
                return None
            plugin = incoming_protocol(profile, app.plugins)
            settings = incoming_settings(profile, app.plugins)
        return profile.name, lambda: plugin.open_waiter(settings)

    return read


def hold_after_cycle(
    session: Session, app: Postroom, worker: str, profile_id: int, now: datetime, lease: timedelta
) -> bool:
    """Keep this worker's lease on a watchable profile after its cycle (its next poll is already set).

    Called in the transaction that gave the lease back (``release_profile``); True if the lease
    is held again, so that this worker alone watches and fetches the profile until it lets go.
    """
    profile = session.get(MediaProfile, profile_id)
    if profile is None or not watchable(session, app, profile):
        return False
    # The lease was given back in this transaction by a Core UPDATE (leases.release_after_cycle)
    # that the loaded profile does not see: take it again the same way, and only if nobody has.
    table = cast(Table, MediaProfile.__table__)
    taken = session.connection().execute(
        update(table)
        .where(table.c.id == profile_id, table.c.lease_owner.is_(None))
        .values(lease_owner=worker, lease_expires_at=now + lease)
        .returning(table.c.id)
    )
    return taken.first() is not None


class IdleSchedule:
    """What the scheduler asks of IDLE: which held profiles to fetch now, and which to hold after a cycle.

    A held profile is fetched when its watcher brings news, and at its poll time (the safety net),
    which ``claim_due_profiles`` no longer sees because this worker holds its lease.
    """

    def __init__(self, app: Postroom, wake: Callable[[], None], *, renew_every: float = RENEW_EVERY) -> None:
        self.app = app
        self.wake = wake
        self.watcher = IdleWatcher(
            waiter_opener(app), self._news, is_outage=is_outage, renew_every=renew_every
        )
        self.lock = threading.Lock()
        self.news: set[int] = set()
        self.next_at: dict[int, datetime] = {}

    def _news(self, profile_id: int) -> None:
        with self.lock:
            self.news.add(profile_id)
        self.wake()

    def has_news(self) -> bool:
        with self.lock:
            return bool(self.news)

    def held(self) -> set[int]:
        with self.lock:
            return set(self.next_at)

    def due(self, now: datetime, busy: set[int], limit: int) -> list[int]:
        """Up to ``limit`` held profiles to fetch now (news first, then polls due), none of ``busy``."""
        with self.lock:
            chosen = sorted(p for p in self.news if p in self.next_at and p not in busy)
            chosen += sorted(
                p for p, at in self.next_at.items() if at <= now and p not in busy and p not in chosen
            )
            chosen = chosen[:limit]
            self.news.difference_update(chosen)
            self.news.intersection_update(self.next_at)
        return chosen

    def refresh(self) -> None:
        """The configuration changed: poll every held profile once, which re-decides whether to hold it."""
        with self.lock:
            self.news.update(self.next_at)
        self.wake()

    def after_cycle(
        self,
        session: Session,
        worker: str,
        profile_id: int,
        now: datetime,
        next_at: datetime | None,
        lease: timedelta,
        may_hold: bool,
    ) -> bool:
        """After ``release_profile`` in the same transaction: hold and watch the profile, or let go of it.

        ``may_hold``: the cycle succeeded and the profile's protocol can wait for mail; only then is
        the profile (and its IDLE switch) read, so that a polling profile's cycle costs no query here.
        """
        hold = (
            may_hold
            and next_at is not None
            and profile_id not in self.watcher.unsupported
            and hold_after_cycle(session, self.app, worker, profile_id, now, lease)
        )
        if hold and next_at is not None:
            with self.lock:
                self.next_at[profile_id] = next_at
        else:
            self.let_go(profile_id)
        return hold

    def adopt(self, held: dict[int, datetime | None], news: set[int]) -> None:
        """Hold and watch the profiles a previous image of this worker held (``standby_switch.py``);
        those in ``news`` are fetched at once. One without a poll time is polled now."""
        now = datetime.now(UTC)
        with self.lock:
            for profile_id, due in held.items():
                self.next_at[profile_id] = due or now
            self.news.update(news & set(held))
        for profile_id in held:
            self.watcher.watch(profile_id)
        self.wake()

    def started(self, profile_id: int) -> None:
        """Called after the cycle's transaction committed: watch the profile now held."""
        if profile_id in self.held():
            self.watcher.watch(profile_id)

    def let_go(self, profile_id: int) -> None:
        with self.lock:
            self.next_at.pop(profile_id, None)
            self.news.discard(profile_id)
        self.watcher.unwatch(profile_id)
