"""An empty fetch cycle runs in one transaction: the outcome and the lease release share its commit.

The worker's cycle of a mailbox with nothing new reads the profile (and its OAuth grant, once for
every provider), lists the mailbox and commits the profile's status, last fetch, next fetch and the
lease's release together. The release stays conditional: a lease another worker holds is left alone.
"""

from __future__ import annotations

from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, select

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile, ProfileStatus, utcnow
from postroom.core.inbound.fetch import Fetcher, FetchReport
from postroom.core.worker.leases import claim_due_profiles
from postroom.core.worker.scheduler import Worker
from tests.support.profiles import empty_maildir_profile


def _count_transactions(app: Postroom) -> list[int]:
    begun: list[int] = []
    event.listen(app.engine, "begin", lambda _connection: begun.append(1))
    return begun


def test_an_empty_cycle_is_one_transaction_that_records_it_and_gives_the_lease_back(
    pg_app: Postroom, tmp_path: Path
) -> None:
    profile_id = empty_maildir_profile(pg_app, tmp_path / "Maildir")
    worker = Worker(pg_app, threads=1)
    with pg_app.transaction() as session:
        assert claim_due_profiles(session, worker.id, utcnow(), timedelta(seconds=60), 1) == [profile_id]
    worker.in_flight[profile_id] = None  # type: ignore[assignment]  # as _schedule leaves it
    started = utcnow()
    begun = _count_transactions(pg_app)

    report = worker._fetch_one(Fetcher(pg_app), profile_id)

    assert report.error is None and report.listed == 0
    assert len(begun) == 1
    assert worker.in_flight == {} and worker.cycles == 1
    with pg_app.sessions() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        assert profile.lease_owner is None and profile.lease_expires_at is None
        assert profile.status == ProfileStatus.OK and profile.last_fetch_at is not None
        assert profile.last_fetch_at >= started
        assert profile.next_fetch_at is not None
        assert started + timedelta(seconds=30) <= profile.next_fetch_at <= utcnow() + timedelta(seconds=30)


def test_a_cycle_whose_lease_was_taken_records_its_outcome_but_leaves_the_new_holder_alone(
    pg_app: Postroom, tmp_path: Path
) -> None:
    profile_id = empty_maildir_profile(pg_app, tmp_path / "Maildir")
    worker = Worker(pg_app, threads=1)
    with pg_app.transaction() as session:
        claim_due_profiles(session, worker.id, utcnow(), timedelta(seconds=60), 1)
        # Our lease ran out meanwhile and another worker took the profile.
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        profile.lease_owner = "other"
        profile.next_fetch_at = planned = utcnow() + timedelta(hours=1)

    report = worker._fetch_one(Fetcher(pg_app), profile_id)

    assert report.error is None
    with pg_app.sessions() as session:
        owner, next_at, status, last = session.execute(
            select(
                MediaProfile.lease_owner,
                MediaProfile.next_fetch_at,
                MediaProfile.status,
                MediaProfile.last_fetch_at,
            ).where(MediaProfile.id == profile_id)
        ).one()
    assert owner == "other" and next_at == planned
    assert status == ProfileStatus.OK and last is not None


def test_a_cycle_that_ended_leaves_its_profiles_next_cycle_in_flight(pg_app: Postroom, tmp_path: Path) -> None:
    """A held (IDLE) profile may be handed out again as soon as its cycle committed: that next
    cycle's entry in ``in_flight`` must stay, or the scheduler, seeing the profile free, starts
    a third cycle beside it (two fetches of one mailbox at once)."""
    profile_id = empty_maildir_profile(pg_app, tmp_path / "Maildir")
    worker = Worker(pg_app, threads=1)
    with pg_app.transaction() as session:
        assert claim_due_profiles(session, worker.id, utcnow(), timedelta(seconds=60), 1) == [profile_id]
    worker.in_flight[profile_id] = None  # type: ignore[assignment]  # as _schedule leaves it
    successor = Future[FetchReport]()
    handed_out = worker.idle.started

    def hand_out_again(started_id: int) -> None:
        """What the scheduler does when news arrives for a held profile whose cycle just committed."""
        handed_out(started_id)
        with worker.lock:
            worker.in_flight[started_id] = successor

    worker.idle.started = hand_out_again  # type: ignore[method-assign]

    report = worker._fetch_one(Fetcher(pg_app), profile_id)

    assert report.error is None and worker.cycles == 1
    assert worker.in_flight == {profile_id: successor}
