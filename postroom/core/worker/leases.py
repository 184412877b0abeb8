"""Fetch leases: which worker fetches which profile now, kept in the database (docs/architecture.md, "Leases").

A worker claims due profiles with one UPDATE whose subquery skips rows other workers hold
locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a lease expires unless renewed, so the
profiles of a worker that died are taken over by the others. PostgreSQL is the only coordinator.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from postroom.core.data.driver_sql import DriverStatement
from postroom.core.data.models import MediaProfile
from postroom.core.data.validation import FETCH_INTERVAL
from postroom.core.inbound.outcome import CycleEnd, record_outcome

_TABLE = cast(Table, MediaProfile.__table__)
#: Built once (a Core statement with parameters): the scheduler runs it many times a second.
_NOW = bindparam("now", type_=_TABLE.c.next_fetch_at.type)
_CLAIM = (
    update(_TABLE)
    .where(
        _TABLE.c.id.in_(
            select(_TABLE.c.id)
            .where(
                MediaProfile.can_fetch.expression,
                or_(
                    _TABLE.c.next_fetch_at.is_(None),
                    _TABLE.c.next_fetch_at <= _NOW,
                    # With the line below: held by a worker whose lease ran out. A watched (IDLE)
                    # profile keeps its lease between polls an hour apart; if its worker dies, it is
                    # taken over when the lease expires, not when its next poll comes due.
                    _TABLE.c.lease_owner.is_not(None),
                ),
                or_(_TABLE.c.lease_owner.is_(None), _TABLE.c.lease_expires_at < _NOW),
            )
            .order_by(_TABLE.c.next_fetch_at.asc().nulls_first(), _TABLE.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(lease_owner=bindparam("worker"), lease_expires_at=bindparam("expires", type_=_TABLE.c.lease_expires_at.type))
    .returning(_TABLE.c.id)
)

#: On PostgreSQL the claim runs on the DBAPI cursor (``core/data/driver_sql.py``): the CPU an idle
#: worker spends is mostly its claims.
_CLAIM_DIRECT = DriverStatement(_CLAIM)

#: The longest a profile in error waits before it is tried again.
MAX_BACKOFF = timedelta(minutes=5)


def claim_due_profiles(
    session: Session, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[int]:
    """Lease up to ``limit`` profiles whose fetch is due and that nobody (alive) holds; returns their ids.

    One statement however many it claims (the worker claims a short queue at once, see
    ``claim_size.py``); rows another worker is claiming at the same moment are skipped, not
    waited for, and never handed out twice: the row lock is held until the claim commits.
    """
    return claim_on(session.connection(), worker, now, lease, limit)


def claim_on(connection: Connection, worker: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
    """``claim_due_profiles`` on a connection in a transaction (the scheduler's: no ORM session)."""
    if limit <= 0:
        return []
    claimed = _CLAIM_DIRECT.all(connection, {"now": now, "worker": worker, "expires": now + lease, "limit": limit})
    return sorted(row.id for row in claimed)


def renew_leases(
    session: Session, worker: str, profile_ids: Sequence[int], now: datetime, lease: timedelta
) -> set[int]:
    """Extend this worker's leases on the profiles it is still fetching; returns those it still holds."""
    if not profile_ids:
        return set()
    renewed = session.execute(
        update(MediaProfile)
        .where(MediaProfile.id.in_(profile_ids), MediaProfile.lease_owner == worker)
        .values(lease_expires_at=now + lease)
        .returning(MediaProfile.id)
        .execution_options(synchronize_session=False)
    )
    return set(renewed.scalars())


def adopt_leases(session: Session, worker: str, now: datetime, lease: timedelta) -> dict[int, datetime | None]:
    """Renew every lease this worker holds and return each profile's next poll: what a new image of the
    process (``standby_switch.py``) takes over from the one before, which held them to watch mailboxes."""
    renewed = session.execute(
        update(MediaProfile)
        .where(MediaProfile.lease_owner == worker)
        .values(lease_expires_at=now + lease)
        .returning(MediaProfile.id, MediaProfile.next_fetch_at)
        .execution_options(synchronize_session=False)
    )
    return {profile_id: due for profile_id, due in renewed}


def backoff(interval: int, consecutive_failures: int) -> timedelta:
    """The wait after a cycle: the interval when healthy, doubling per failure, capped at MAX_BACKOFF."""
    if consecutive_failures <= 0:
        return timedelta(seconds=interval)
    doubled = timedelta(seconds=interval * 2 ** min(consecutive_failures, 16))
    return max(timedelta(seconds=interval), min(doubled, MAX_BACKOFF))


def release_profile(
    session: Session, worker: str, profile_id: int, now: datetime, started_at: datetime | None = None
) -> datetime | None:
    """Give a profile back after its cycle and schedule its next fetch; returns when that is.

    A healthy profile is fetched every ``fetch_interval`` seconds counted from the start of its
    cycles, so a cycle's own length does not stretch the interval (a cycle longer than the
    interval is followed at once by the next); a profile in error waits its backoff from now.
    """
    profile = session.get(MediaProfile, profile_id, populate_existing=True)
    if profile is None or profile.lease_owner != worker:
        return None  # our lease expired and someone else took it: leave their schedule alone
    profile.next_fetch_at = next_fetch_time(profile, now, started_at)
    profile.lease_owner = None
    profile.lease_expires_at = None
    return profile.next_fetch_at


def next_fetch_time(profile: MediaProfile, now: datetime, started_at: datetime | None) -> datetime:
    """When the profile is fetched next, after a cycle that started at ``started_at`` (see release_profile)."""
    return _next_time(_interval(profile), profile.consecutive_failures, now, started_at)


def _next_time(interval: int, failures: int, now: datetime, started_at: datetime | None) -> datetime:
    if failures <= 0 and started_at is not None:
        return max(now, started_at + timedelta(seconds=interval))
    return now + backoff(interval, failures)


def release_after_cycle(
    session: Session, worker: str, end: CycleEnd, now: datetime, started_at: datetime
) -> datetime | None:
    """Record the cycle's outcome and give the lease back, in one UPDATE of the cycle's own transaction.

    ``Fetcher.fetch_profile``'s ``finish``: the outcome (status, error, last fetch), the next
    fetch time and the lease's release are one conditional statement, written only if this worker
    still holds the lease. If it does not (the lease ran out and another worker took the profile)
    the outcome alone is written and the new holder's schedule left alone. Returns the next fetch
    time, or None if the lease was lost.
    """
    interval = FETCH_INTERVAL.clamp(end.fetch_interval, f"profile {end.name!r}")
    due = _next_time(interval, end.consecutive_failures, now, started_at)
    # A Core statement on the table (not the ORM's flush), run on the DBAPI cursor on PostgreSQL
    # (``core/data/driver_sql.py``): it runs every cycle, and each layer above the cursor costs
    # about as much CPU as the round trip itself.
    released = _RELEASE_DIRECT.first(
        session.connection(), {"profile": end.profile_id, "worker": worker, "due": due, **end.values}
    )
    if released is not None:
        return due
    record_outcome(session, end)
    return None


_RELEASE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("profile"), _TABLE.c.lease_owner == bindparam("worker"))
    .values(
        status=bindparam("status"),
        last_error=bindparam("last_error"),
        consecutive_failures=bindparam("consecutive_failures"),
        last_fetch_at=bindparam("last_fetch_at", type_=_TABLE.c.last_fetch_at.type),
        next_fetch_at=bindparam("due", type_=_TABLE.c.next_fetch_at.type),
        lease_owner=None,
        lease_expires_at=None,
    )
    .returning(_TABLE.c.id)
)
_RELEASE_DIRECT = DriverStatement(_RELEASE)


def reschedule_to_intervals(session: Session, now: datetime) -> list[tuple[str, datetime]]:
    """Bring forward the next fetch of healthy profiles whose interval was shortened since it was planned.

    Without it a profile changed from an hourly to a ten-second interval would wait out the old
    hour. Returns the profiles moved, with their new time.
    """
    profiles = session.scalars(
        select(MediaProfile).where(
            MediaProfile.can_fetch,
            MediaProfile.consecutive_failures == 0,
            MediaProfile.next_fetch_at > now,
            MediaProfile.last_fetch_at.is_not(None),
            or_(MediaProfile.lease_owner.is_(None), MediaProfile.lease_expires_at < now),
        )
    )
    moved = []
    for profile in profiles:
        assert profile.next_fetch_at is not None and profile.last_fetch_at is not None
        due = max(now, profile.last_fetch_at + timedelta(seconds=_interval(profile)))
        if due < profile.next_fetch_at:
            profile.next_fetch_at = due
            moved.append((profile.name, due))
    return moved


def _interval(profile: MediaProfile) -> int:
    """The profile's fetch interval, pulled into its range: a value typed in SQL must not stop the worker."""
    return FETCH_INTERVAL.clamp(profile.fetch_interval, f"profile {profile.name!r}")


def release_all(session: Session, worker: str) -> int:
    """Give back every lease of this worker (on shutdown); the profiles stay due."""
    result = session.execute(
        update(MediaProfile)
        .where(MediaProfile.lease_owner == worker)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
