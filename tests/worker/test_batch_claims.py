"""Claiming many due profiles in one statement still hands each to one worker only (issue 16).

The scheduler claims its free threads and a short queue at once; several workers (here threads,
each on its own PostgreSQL connection, all claiming at the same moment) must split the due
profiles between them without overlap, and a profile another worker holds is not claimed until
that lease runs out.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import insert

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import MediaProfile, utcnow
from postroom.core.worker.claim_size import CLAIM_GAP, MAX_CLAIM_GAP, QUEUE_SECONDS, ClaimSize
from postroom.core.worker.leases import claim_due_profiles

PROFILES = 400
CLAIMERS = 6
LEASE = timedelta(seconds=60)


def _due_profiles(app: Postroom, count: int) -> set[int]:
    with app.transaction() as session:
        rows = session.execute(
            insert(MediaProfile).returning(MediaProfile.id),
            [
                {
                    "contact_center_id": DEFAULT_CONTACT_CENTER_ID,
                    "name": f"p{number}",
                    "incoming_allowed": True,
                    "fetch_protocol": "maildir",
                    "incoming_folder": f"/nonexistent/{number}",
                }
                for number in range(count)
            ],
        )
        return set(rows.scalars())


def test_concurrent_batch_claims_never_hand_one_profile_to_two_workers(pg_app: Postroom) -> None:
    due = _due_profiles(pg_app, PROFILES)
    now = utcnow()
    start = threading.Barrier(CLAIMERS)
    claims: dict[str, list[list[int]]] = {f"worker-{n}": [] for n in range(CLAIMERS)}

    def claim(worker: str) -> None:
        start.wait()
        while True:
            with pg_app.transaction() as session:
                batch = claim_due_profiles(session, worker, now, LEASE, 37)
            if not batch:
                return
            claims[worker].append(batch)

    threads = [threading.Thread(target=claim, args=(worker,)) for worker in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    handed_out = [profile for batches in claims.values() for batch in batches for profile in batch]
    assert len(handed_out) == len(set(handed_out)), "a profile was claimed twice"
    assert set(handed_out) == due
    assert sum(1 for batches in claims.values() if batches) > 1  # they did claim side by side


def test_a_held_lease_is_claimed_by_another_worker_only_once_it_ran_out(pg_app: Postroom) -> None:
    due = _due_profiles(pg_app, 5)
    now = utcnow()
    with pg_app.transaction() as session:
        assert set(claim_due_profiles(session, "first", now, LEASE, 50)) == due
    with pg_app.transaction() as session:
        assert claim_due_profiles(session, "second", now + LEASE / 2, LEASE, 50) == []
    with pg_app.transaction() as session:
        assert set(claim_due_profiles(session, "second", now + LEASE * 2, LEASE, 50)) == due


def test_the_queue_claimed_beyond_free_threads_follows_the_rate_cycles_end_at() -> None:
    size = ClaimSize(threads=8)
    assert size.capacity() == 8  # nothing measured yet: free threads only
    size.rate = 1000.0  # cycles a second, as ended() measures it
    assert size.capacity() == 8 + int(1000 * QUEUE_SECONDS)
    size.rate = 2.0  # slow servers: hardly any queue
    assert size.capacity() == 9


def test_claims_are_spaced_further_apart_when_cycles_end_slowly() -> None:
    size = ClaimSize(threads=8)
    assert size.gap() == CLAIM_GAP
    size.rate = 1000.0
    assert size.gap() == CLAIM_GAP  # many cycles per claim already
    size.rate = 50.0  # 500 profiles every 10 s: a claim every 0.16 s serves 8 cycles
    assert CLAIM_GAP < size.gap() < MAX_CLAIM_GAP
    size.rate = 1.0
    assert size.gap() == MAX_CLAIM_GAP
