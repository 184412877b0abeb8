"""The worker's standby: waits for mail without the database stack, and wakes the engine for any work.

``postroom run`` re-executes its process as this module after ``--standby-after`` seconds with
nothing done (``standby_switch.py`` says why and how). It imports the standard library, the bare
database driver (``standby_store.py``), the password cipher and the protocol plugins the engine
named in the handover, and no SQLAlchemy: about 35 MiB where the engine holds 72 (issue 18).

Once a tick (not on every wake) it asks the configuration generation (another than the engine's
wakes the engine) and whether a reply is due (which wakes it too), every minute the plugin switches
(as the engine re-reads them; other switches wake it), claims due profiles for its threads as the
engine does (a claim serving several freed threads, ``claim_size.py``), and runs the standby cycle on each, and on the profiles it holds to watch (IMAP IDLE) when
their connection brings news or their poll comes due. The standby cycle is the engine's empty
cycle and nothing else:

1. read the profile's row; a profile the standby cannot fetch (a protocol the handover does not
   name, a login with an access token, a profile in error, whose recovery the engine records and
   announces) wakes the engine;
2. list the mailbox with the plugin and ask the fetch ledger about keys it has not seen; a key the
   ledger does not hold, a stored mail still to delete on the server, or a moved sync state wakes
   the engine;
3. otherwise record the cycle as the engine would (status ok, last and next fetch, the lease given
   back) and hold the profile again to watch it if its protocol and switch allow; in the read's
   transaction, so that an empty cycle is one transaction, as the engine's (``bench.standby_cycle``).

A server that fails wakes the engine too, which runs the cycle again and records the failure with
its events. So the standby writes nothing the engine would not, and every mail is still stored by
the engine, before it is acknowledged. To wake the engine the standby finishes its cycles, closes
its IDLE connections, gives back the leases of claimed profiles (they stay due, so the engine
claims them at once) and keeps those it holds to watch, which the engine adopts, fetching at once
those that brought the news.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from postroom.core.contract.protocols import MailWaiter, ProtocolPlugin
from postroom.core.data.validation import FETCH_INTERVAL, FETCH_LAST_DAYS
from postroom.core.servers import password_settings
from postroom.core.worker.claim_size import ClaimSize
from postroom.core.worker.idle import CONNECTORS, IdleWatcher
from postroom.core.worker.log_format import configure_logging
from postroom.core.worker.memory import limit_malloc_arenas, release_startup_garbage
from postroom.core.worker.standby_plugins import StandbyPlugins
from postroom.core.worker.standby_store import (
    StandbyCycle,
    StandbyDatabaseError,
    StandbyProfile,
    StandbyStore,
)
from postroom.core.worker.standby_switch import Handover, exec_engine

log = logging.getLogger("postroom.worker")

#: After the database failed the standby, wait this long before asking it again (as the engine).
DATABASE_RETRY = 5.0
#: The plugin switches are compared with the engine's this often (the engine re-reads them as often).
SWITCHES_EVERY = 60.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _gone(error: BaseException) -> bool:
    return isinstance(error, StandbyDatabaseError) and error.gone


class Standby:
    """One worker in its standby form: the same worker id, leases and (on SQLite) lock as its engine."""

    def __init__(self, handover: Handover, store: StandbyStore) -> None:
        self.handover = handover
        self.store = store
        self.id = handover.worker
        self.lease = timedelta(seconds=handover.lease)
        self.threads = handover.threads
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.in_flight: set[int] = set()
        #: Profiles held to watch, with their next poll.
        self.held: dict[int, datetime] = {}
        #: Held profiles whose connection brought news since their last cycle.
        self.news: set[int] = set()
        #: Why the engine must wake (the first reason found), and the held profiles it must fetch.
        self.reason: str | None = None
        self.for_engine: set[int] = set()
        #: Per profile, the mailbox keys known to be in its ledger (as the engine's Fetcher keeps them).
        self.ledger: dict[int, set[str]] = {}
        self.plugins = StandbyPlugins(handover.protocols)
        #: When the configuration generation and the outbox are next asked (once a tick, not on every wake).
        self.next_check = 0.0
        #: How many profiles to hold claimed (threads and a short queue), and when the next claim may be.
        self.claim_size = ClaimSize(handover.threads)
        self.next_claim = 0.0
        self.claim_waits = False
        self.outage_since: float | None = None
        #: Claimed profiles whose cycle the database failed: given back when it answers again.
        self.stranded: set[int] = set()
        #: Standby cycles finished (looked at, recorded or handed to the engine), for benches and tests.
        self.cycles = 0
        self.watcher = IdleWatcher(
            self._opener, self._on_news, is_outage=_gone, renew_every=handover.idle_renew
        )
        self.watcher.unsupported.update(handover.unsupported)

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> Handover | None:
        """Wait until stopped (returns None) or until there is work (returns the engine's handover)."""
        self.watcher.start()
        held = self.store.adopt(self.id, utcnow(), self.lease)
        now = utcnow()
        with self.lock:
            self.held = {profile_id: due or now for profile_id, due in held.items()}
        for profile_id in held:
            self.watcher.watch(profile_id)
        log.info(
            "worker %s standing by: %d profile(s) held to watch; the engine wakes for any work",
            self.id,
            len(held),
        )
        next_renewal = time.monotonic() + self.lease.total_seconds() / 3
        next_switches = time.monotonic() + SWITCHES_EVERY
        with ThreadPoolExecutor(self.threads, thread_name_prefix="postroom-standby") as pool:
            while not self.stopping.is_set() and self.reason is None:
                self.wake.clear()
                try:
                    if time.monotonic() >= next_switches:
                        next_switches = time.monotonic() + SWITCHES_EVERY
                        if self.store.disabled_plugins() != set(self.handover.disabled):
                            self._wake_engine("the plugin switches changed")
                    self._tick(pool)
                    if time.monotonic() >= next_renewal:
                        next_renewal = time.monotonic() + self.lease.total_seconds() / 3
                        self._renew()
                    self._database_back()
                except StandbyDatabaseError as error:
                    self._database_failed(error)
                    self.stopping.wait(DATABASE_RETRY)
                self.wake.wait(self._pause())
        self.watcher.stop()
        if self.reason is None:
            released = self.store.release_all(self.id)
            log.info("worker %s stopped (%d lease(s) given back)", self.id, released)
            return None
        with self.lock:
            news = sorted(self.for_engine & set(self.held))
        return replace(self.handover, news=news, reason=self.reason)

    def _wake_engine(self, reason: str) -> None:
        with self.lock:
            if self.reason is None:
                self.reason = reason
        self.wake.set()

    # --- the loop -------------------------------------------------------------------------------

    def _tick(self, pool: ThreadPoolExecutor) -> None:
        now = utcnow()
        # Asked once a tick, as the engine asks (not on every wake: a wake ends every cycle).
        if time.monotonic() >= self.next_check:
            self.next_check = time.monotonic() + self.handover.tick
            if self.store.generation() != self.handover.generation:
                self._wake_engine("the configuration changed")
                return
            if self.store.anything_due(now):
                self._wake_engine("a reply is due")
                return
        with self.lock:
            free = self.claim_size.capacity() - len(self.in_flight)
            chosen = sorted(p for p in self.news if p in self.held and p not in self.in_flight)
            chosen += sorted(
                p for p, at in self.held.items() if at <= now and p not in self.in_flight and p not in chosen
            )
            chosen = chosen[: max(free, 0)]
            self.news.difference_update(chosen)
            self.in_flight.update(chosen)
        claimed: list[int] = []
        # Claims spaced as the engine spaces them (``claim_size.py``): one serves several freed threads.
        self.claim_waits = free > len(chosen) and time.monotonic() < self.next_claim
        if free > len(chosen) and not self.claim_waits:
            claimed = self.store.claim(self.id, now, self.lease, free - len(chosen))
            self.next_claim = time.monotonic() + self.claim_size.gap()
        with self.lock:
            self.in_flight.update(claimed)
        for profile_id in chosen + claimed:
            pool.submit(self._cycle, profile_id)

    def _pause(self) -> float:
        """How long the loop waits for a wake: a tick, or until a claim put off by its gap is due."""
        if self.claim_waits:
            return min(self.handover.tick, max(self.next_claim - time.monotonic(), 0.0))
        return self.handover.tick

    def _renew(self) -> None:
        with self.lock:
            mine = sorted(self.in_flight | set(self.held))
        kept = self.store.renew(self.id, mine, utcnow(), self.lease)
        for profile_id in set(mine) - kept:
            with self.lock:
                lost = self.held.pop(profile_id, None) is not None
            if lost:
                self.watcher.unwatch(profile_id)
                log.warning("lost the fetch lease of profile %s to another worker", profile_id)

    def _database_failed(self, error: StandbyDatabaseError) -> None:
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            log.error("standby: the database failed (%s); trying again every %.0f s", error, DATABASE_RETRY)

    def _database_back(self) -> None:
        if self.outage_since is not None:
            log.info("standby: the database answers again after %.0f s", time.monotonic() - self.outage_since)
            self.outage_since = None
        with self.lock:
            stranded, self.stranded = sorted(self.stranded - self.in_flight), self.stranded & self.in_flight
        if stranded:  # still due: claimed again at once
            self.store.let_go(self.id, stranded)

    # --- the standby cycle ----------------------------------------------------------------------

    def _cycle(self, profile_id: int) -> None:
        started = utcnow()
        try:
            reason = self._look(profile_id, started)
        except StandbyDatabaseError as error:
            # A held lease stays (renewed); a claimed one is given back once the database answers.
            self._database_failed(error)
            with self.lock:
                if profile_id not in self.held:
                    self.stranded.add(profile_id)
            reason = None
        except Exception as error:  # a server that fails: the engine runs the cycle and records it
            reason = f"profile {profile_id}: {type(error).__name__}: {error}"
        try:
            if reason is not None:
                self._hand_to_engine(profile_id, reason)
        except StandbyDatabaseError as error:
            self._database_failed(error)
        finally:
            with self.lock:
                self.in_flight.discard(profile_id)
                self.cycles += 1
                self.claim_size.ended()
            self.wake.set()

    def _hand_to_engine(self, profile_id: int, reason: str) -> None:
        with self.lock:
            held = profile_id in self.held
            if held:
                self.for_engine.add(profile_id)
        if not held:  # given back still due: the engine claims it at once
            self.store.let_go(self.id, [profile_id])
        self._wake_engine(reason)

    def _look(self, profile_id: int, started: datetime) -> str | None:
        """The standby cycle of one profile: None when it recorded an empty cycle, else why the engine must run it.

        One transaction, as the engine's empty cycle: the profile read as it begins, the cycle
        recorded (and the profile held to watch) as it ends (``StandbyStore.cycle``).
        """
        with self.store.cycle(profile_id) as cycle:
            row = cycle.profile
            if row is None or row.deleted_at is not None or not row.incoming_allowed:
                gone = True
            else:
                gone = False
                plugin = self._list(cycle, row)
                if isinstance(plugin, str):
                    return plugin  # why the engine must run the cycle (nothing written)
                now = utcnow()
                interval = FETCH_INTERVAL.clamp(row.fetch_interval, f"profile {row.name!r}")
                due = max(now, started + timedelta(seconds=interval))
                still_ours = cycle.release_ok(self.id, now, due)
                watch = (
                    still_ours
                    and plugin.CAN_WAIT_FOR_MAIL
                    and row.idle
                    and row.id not in self.watcher.unsupported
                )
                held = watch and cycle.hold(self.id, now, self.lease)
        if gone:
            self._let_go(profile_id)
            self.store.let_go(self.id, [profile_id])
            return None
        assert row is not None
        if held:
            with self.lock:
                self.held[row.id] = due
            self.watcher.watch(row.id)
        else:
            self._let_go(row.id)
        if self.handover.verbose:
            log.info(
                "profile %s: nothing new (standby); next fetch at %s",
                row.name,
                f"{due.astimezone():%H:%M:%S}",
            )
        return None

    def _list(self, cycle: StandbyCycle, row: StandbyProfile) -> str | ProtocolPlugin:
        """List the profile's mailbox: why the engine must run its cycle, or (an empty cycle) the plugin."""
        plugin_class = self.plugins.plugin_class(row.fetch_protocol)
        if plugin_class is None or row.grant_id is not None:
            return f"profile {row.name} is fetched by the engine"
        if row.status != "ok" or row.consecutive_failures:
            return f"profile {row.name} was in error"
        plugin, settings = self.plugins.settings(row, plugin_class)
        if row.sync_state is not None:
            settings = replace(settings, sync_state=row.sync_state)
        days = FETCH_LAST_DAYS.clamp(row.fetch_last_days or 0, f"profile {row.name!r}")
        since = date.today() - timedelta(days=days) if days else None
        with plugin.open_mailbox(settings) as mailbox:
            keys = [ref.key for ref in mailbox.list_mail(since)]
            state = mailbox.sync_state()
        ledger = self.ledger.setdefault(row.id, set())
        ledger.intersection_update(keys)
        ledger.update(cycle.known_keys([key for key in keys if key not in ledger]))
        new = sum(1 for key in keys if key not in ledger)
        if new:
            return f"profile {row.name} has {new} new mail(s)"
        if row.delete_on_fetch and keys:
            return f"profile {row.name} has stored mail to delete on the server"
        if state is not None and state != row.sync_state:
            return f"profile {row.name}'s mailbox moved on"
        return plugin

    def _let_go(self, profile_id: int) -> None:
        with self.lock:
            self.held.pop(profile_id, None)
            self.news.discard(profile_id)
        self.watcher.unwatch(profile_id)

    # --- IDLE -----------------------------------------------------------------------------------

    def _opener(self, profile_id: int) -> tuple[str, Callable[[], MailWaiter | None]] | None:
        row = self.store.read_profile(profile_id)
        if row is None or row.deleted_at is not None:
            return None
        plugin_class = self.plugins.plugin_class(row.fetch_protocol)
        if plugin_class is None or row.grant_id is not None:
            return None
        plugin = plugin_class()
        settings = password_settings(row, plugin)

        def connect() -> MailWaiter | None:
            return plugin.open_waiter(settings)

        return row.name, connect

    def _on_news(self, profile_id: int) -> None:
        with self.lock:
            self.news.add(profile_id)
        self.wake.set()


def main() -> int:
    """``python -m postroom.core.worker.standby``: started only by ``postroom run`` (an exec with a handover)."""
    handover = Handover.take()
    if handover is None:
        print("The standby is started by 'postroom run' only.", file=sys.stderr)
        return 2
    configure_logging("json" if handover.log_format == "json" else "text")
    limit_malloc_arenas()
    try:
        store = StandbyStore.open(handover.database_url, size=handover.threads + CONNECTORS + 1)
        standby = Standby(handover, store)
        for name in ("SIGTERM", "SIGINT"):
            signal.signal(getattr(signal, name), standby.stop)
        release_startup_garbage()
        woken = standby.run()
        store.close()
    except Exception as error:
        # A bug here must not end the worker: the engine, which does everything, takes over.
        log.exception("the standby failed; the engine takes over")
        exec_engine(replace(handover, reason=f"the standby failed ({type(error).__name__})"))
    if woken is None:
        return 0
    exec_engine(woken)


if __name__ == "__main__":
    sys.exit(main())
