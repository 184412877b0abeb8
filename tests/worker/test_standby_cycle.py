"""What the standby's empty cycle costs the database: one transaction, as the engine's (issue 18, ``bench.standby_cycle``).

A ``Standby`` runs here in the test process on a store that counts its transactions: its cycle
reads the profile and records the empty cycle (and holds a watched profile) in one transaction,
asks the configuration generation and the outbox once a tick rather than on every wake, spaces
its claims, and builds a profile's plugin settings again only when its configuration changed.
"""

from __future__ import annotations

import mailbox
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from postroom.core.app import Postroom
from postroom.core.data import configuration
from postroom.core.data.models import FetchLedger, MediaProfile
from postroom.core.worker.standby import Standby, utcnow
from postroom.core.worker.standby_store import StandbyStore
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.support.standby import LEASE, in_process_standby, standby_profile

WORKER = "w:1:standby-cycle"


class CountingStore(StandbyStore):
    """The standby's store, counting its transactions (all, and this thread's) and the generation asked."""

    transactions = 0
    generations = 0
    here = 0

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        self.transactions += 1
        if threading.current_thread() is threading.main_thread():
            self.here += 1
        with super()._transaction() as run:
            yield run

    def generation(self) -> int:
        self.generations += 1
        return super().generation()


@pytest.fixture
def store(database_url: str) -> Iterator[CountingStore]:
    opened = CountingStore.open(database_url)
    try:
        yield opened
    finally:
        opened.close()


def _standby(
    app: Postroom, store: StandbyStore, url: str, *, threads: int = 2, tick: float = 3600
) -> Standby:
    return in_process_standby(app, store, url, worker=WORKER, threads=threads, lease=60, tick=tick)


def _profile(app: Postroom, profile_id: int) -> MediaProfile:
    with app.sessions() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        return profile


def test_an_empty_standby_cycle_is_one_transaction(
    app: Postroom, store: CountingStore, database_url: str, tmp_path: Path
) -> None:
    profile_id = standby_profile(app, tmp_path, "md")
    standby = _standby(app, store, database_url)
    assert store.claim(WORKER, utcnow(), standby.lease, 1) == [profile_id]
    before = store.transactions

    standby._cycle(profile_id)

    assert store.transactions - before == 1
    assert standby.reason is None and standby.cycles == 1
    row = _profile(app, profile_id)
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("ok", None, None)
    assert row.last_fetch_at is not None and row.next_fetch_at is not None


def test_a_mailbox_whose_mail_is_stored_already_is_asked_about_in_the_cycles_transaction(
    app: Postroom, store: CountingStore, database_url: str, tmp_path: Path
) -> None:
    """The ledger is asked once (then known in memory), in the one transaction of the cycle."""
    profile_id = standby_profile(app, tmp_path, "md")
    key = mailbox.Maildir(tmp_path / "md").add(numbered_mail(1, tag="kept"))
    with app.transaction() as session:
        session.add(FetchLedger(media_profile_id=profile_id, mailbox_key=key, outcome="stored"))
    standby = _standby(app, store, database_url)
    for _ in range(2):
        assert store.claim(WORKER, utcnow(), standby.lease, 1) == [profile_id]
        before = store.transactions
        standby._cycle(profile_id)
        assert store.transactions - before == 1
        with app.transaction() as session:  # due again at once
            session.get(MediaProfile, profile_id).next_fetch_at = None  # type: ignore[union-attr]
    assert standby.reason is None and standby.ledger[profile_id] == {key}
    assert _profile(app, profile_id).last_fetch_at is not None


def test_a_cycle_that_finds_mail_writes_nothing_and_wakes_the_engine(
    app: Postroom, store: CountingStore, database_url: str, tmp_path: Path
) -> None:
    profile_id = standby_profile(app, tmp_path, "md")
    mailbox.Maildir(tmp_path / "md").add(numbered_mail(1, tag="cycle"))
    standby = _standby(app, store, database_url)
    assert store.claim(WORKER, utcnow(), standby.lease, 1) == [profile_id]

    standby._cycle(profile_id)

    assert standby.reason == "profile md has 1 new mail(s)"
    row = _profile(app, profile_id)
    assert row.last_fetch_at is None and row.lease_owner is None  # given back, still due: the engine's


def test_settings_are_built_again_only_when_the_configuration_changed(
    app: Postroom, store: CountingStore, database_url: str, tmp_path: Path
) -> None:
    profile_id = standby_profile(app, tmp_path, "md")
    standby = _standby(app, store, database_url)
    for _ in range(3):
        assert store.claim(WORKER, utcnow(), standby.lease, 1) == [profile_id]
        standby._cycle(profile_id)
        with app.transaction() as session:  # due again at once
            session.get(MediaProfile, profile_id).next_fetch_at = None  # type: ignore[union-attr]
    assert standby.plugins.builds == 1 and standby.reason is None

    moved = tmp_path / "moved"
    mailbox.Maildir(moved, create=True).add(numbered_mail(1, tag="moved"))
    with app.transaction() as session:
        session.get(MediaProfile, profile_id).incoming_folder = str(moved)  # type: ignore[union-attr]
    assert store.claim(WORKER, utcnow(), standby.lease, 1) == [profile_id]
    standby._cycle(profile_id)
    assert standby.plugins.builds == 2
    assert standby.reason == "profile md has 1 new mail(s)"  # the new folder's, listed with the new settings


def test_the_configuration_and_the_outbox_are_asked_once_a_tick(
    app: Postroom, store: CountingStore, database_url: str, tmp_path: Path
) -> None:
    standby = _standby(app, store, database_url, tick=3600)
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            standby._tick(pool)
        assert store.generations == 1
        with app.transaction() as session:
            configuration.reload_configuration(session)
        standby._tick(pool)
        assert standby.reason is None  # not asked again before the tick is over
        standby.next_check = 0.0  # the tick over
        standby._tick(pool)
    assert store.generations == 2 and standby.reason == "the configuration changed"


def test_a_claim_waits_out_the_gap_since_the_last(
    app: Postroom, store: CountingStore, database_url: str, tmp_path: Path
) -> None:
    profile_id = standby_profile(app, tmp_path, "md")
    standby = _standby(app, store, database_url, tick=3600)
    with ThreadPoolExecutor(2) as pool:
        standby._tick(pool)  # due (never fetched): claimed and looked at
        pool.shutdown(wait=True)
    assert standby.cycles == 1 and standby.next_claim > 0
    with app.transaction() as session:  # due again at once
        session.get(MediaProfile, profile_id).next_fetch_at = None  # type: ignore[union-attr]

    standby.next_claim = time.monotonic() + 60  # a claim made just now
    with ThreadPoolExecutor(2) as pool:
        standby._tick(pool)
        assert _profile(app, profile_id).lease_owner is None  # not claimed within the gap
        assert standby.claim_waits and 0 < standby._pause() <= 60
        standby.next_claim = 0.0  # the gap over
        standby._tick(pool)
    assert standby.cycles == 2 and not standby.claim_waits


def test_a_watched_profile_is_recorded_and_held_in_one_transaction(
    app: Postroom, store: CountingStore, database_url: str, dovecot: Dovecot
) -> None:
    user, _ = dovecot.new_user("held")
    add_dovecot_profile(Cli(database_url), dovecot, user, "imap", "--fetch-interval", "3600", name="held")
    standby = _standby(app, store, database_url)
    now = utcnow()
    [profile_id] = store.claim(WORKER, now, standby.lease, 1)
    before = store.here
    standby.watcher.start()
    try:
        standby._cycle(profile_id)
        assert store.here - before == 1  # the watcher's connection reads the profile on its own thread
        assert standby.reason is None and profile_id in standby.held
        row = _profile(app, profile_id)
        assert row.lease_owner == WORKER and row.status == "ok" and row.last_fetch_at is not None
    finally:
        standby.watcher.stop()


def test_the_cycles_transaction_writes_nothing_if_the_cycle_fails(
    app: Postroom, store: CountingStore, tmp_path: Path
) -> None:
    """A failure after the release (a server that fails as the IDLE connection is set up, say) undoes it:
    the profile stays claimed by this worker, as after a failed cycle the engine then runs."""
    profile_id = standby_profile(app, tmp_path, "md")
    now = utcnow()
    assert store.claim(WORKER, now, LEASE, 1) == [profile_id]
    with pytest.raises(RuntimeError, match="the server failed"), store.cycle(profile_id) as cycle:
        assert cycle.profile is not None and cycle.profile.name == "md"
        assert cycle.release_ok(WORKER, now, now + LEASE) is True
        raise RuntimeError("the server failed")
    row = _profile(app, profile_id)
    assert (row.lease_owner, row.last_fetch_at, row.next_fetch_at) == (WORKER, None, None)
    with store.cycle(profile_id) as cycle:
        assert cycle.release_ok(WORKER, now, now + LEASE) is True
        assert cycle.hold(WORKER, now, LEASE) is True  # given back in this transaction: free to hold
    row = _profile(app, profile_id)
    assert (row.lease_owner, row.status, row.next_fetch_at) == (WORKER, "ok", now + LEASE)
    with store.cycle(profile_id + 100) as cycle:
        assert cycle.profile is None
