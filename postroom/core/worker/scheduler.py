"""The worker (``postroom run``): fetches each profile on its interval, drains the outbox, stops cleanly.

Threads: the scheduler (this loop) leases due profiles and hands them to a small pool of fetch
threads, so one slow or failing server never delays the others; one thread drains the outbox;
one renews this worker's leases. SIGTERM/SIGINT let in-flight work finish its batch, give the
leases back and return 0.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.contract.errors import UserError
from postroom.core.data import configuration
from postroom.core.data.models import MediaProfile, ProfileStatus, utcnow
from postroom.core.data.validation import (
    BATCH_SIZE,
    DEFAULT_PARSE_TIME_LIMIT,
    LEASE_SECONDS,
    PARSE_TIME_LIMIT,
    THREADS,
)
from postroom.core.inbound.fetch import BATCH_MAILS, Fetcher, FetchReport
from postroom.core.inbound.outcome import CycleEnd
from postroom.core.outbound.outbox import Outbox
from postroom.core.plugin_host import PluginInfo
from postroom.core.worker.admin_http import RELOAD_PATH, AdminServer, token_matches
from postroom.core.worker.claim_size import ClaimSize
from postroom.core.worker.cycle_log import log_cycle
from postroom.core.worker.engine_standby import EngineStandby
from postroom.core.worker.idle import RENEW_EVERY
from postroom.core.worker.idle_schedule import IdleSchedule
from postroom.core.worker.leases import (
    claim_on,
    release_after_cycle,
    release_all,
    release_profile,
    renew_leases,
    reschedule_to_intervals,
)
from postroom.core.worker.metrics import WorkerMetrics, set_idle_connections
from postroom.core.worker.outage import DatabaseOutage
from postroom.core.worker.sqlite_lock import SqliteWorkerLock
from postroom.core.worker.standby_switch import Handover, StandbyClock

log = logging.getLogger("postroom.worker")

DEFAULT_LEASE = timedelta(seconds=60)
#: Even without ``postroom reload``, the worker re-reads plugin switches this often.
SELF_RELOAD = timedelta(seconds=60)
#: With nothing queued, the outbox is asked this often whether a reply is due (one cheap query).
OUTBOX_POLL = 1.0
#: After the database failed the scheduler, wait this long before asking it again.
DATABASE_RETRY = 5.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker(EngineStandby):
    """One ``postroom run`` process."""

    def __init__(
        self,
        app: Postroom,
        *,
        threads: int = 8,
        lease: timedelta = DEFAULT_LEASE,
        tick: float = 0.5,
        admin_address: tuple[str, int] | None = None,
        verbose: bool = False,
        batch_mails: int = BATCH_MAILS,
        parse_time_limit: float = DEFAULT_PARSE_TIME_LIMIT,
        metrics_need_token: bool = True,
        idle_renew: float = RENEW_EVERY,
        standby_after: float | None = None,
        handover: Handover | None = None,
    ) -> None:
        THREADS.check(threads)
        self.parse_time_limit = PARSE_TIME_LIMIT.check(parse_time_limit)
        LEASE_SECONDS.check(int(lease.total_seconds()))
        BATCH_SIZE.check(batch_mails)
        self.app = app
        #: Started by the standby (``standby_switch.py``): the same worker, its held leases adopted.
        self.handover = handover
        self.id = handover.worker if handover is not None else worker_id()
        self.threads = threads
        self.lease = lease
        self.tick = tick
        self.verbose = verbose
        self.batch_mails = batch_mails
        #: Set when a fetch thread becomes free, so the scheduler refills it without waiting a tick.
        self.wake = threading.Event()
        self.stopping = threading.Event()
        #: Set by ``stop`` and when this process queues a reply: the outbox loop looks at once.
        self.outbox_wake = threading.Event()
        self.in_flight: dict[int, Future[FetchReport]] = {}
        self.lock = threading.Lock()
        self.generation = -1
        self.last_reload = time.monotonic()
        #: The configuration generation is asked for at most once a tick, not on every wake.
        self.next_generation_check = 0.0
        #: The next claim waits until then (``claim_size.gap()`` after the last).
        self.next_claim = 0.0
        self.plugin_failures: set[tuple[str, str, str]] = set()
        self.cycles = 0
        #: How many profiles to hold claimed at once: free threads plus a short queue (claim_size.py).
        self.claim_size = ClaimSize(threads)
        self.admin_address = admin_address
        self.admin: AdminServer | None = None
        self.metrics = WorkerMetrics(app, self.id)
        self.metrics_need_token = metrics_need_token
        self.sqlite_lock = SqliteWorkerLock(app) if app.engine.dialect.name == "sqlite" else None
        #: One log of a database outage for all threads, instead of a traceback from each, each time.
        self.outage = DatabaseOutage(log, DATABASE_RETRY)
        #: Profiles this worker holds and watches for new mail (IMAP IDLE); see core/worker/idle.py.
        self.idle = IdleSchedule(app, self.wake.set, renew_every=idle_renew)
        #: With nothing done for ``standby_after`` seconds the worker hands over to its standby
        #: (``standby_switch.py``); never while it serves the admin endpoint, whose counters live here.
        self.standby = StandbyClock(standby_after if admin_address is None else None)
        #: Set when :meth:`run` returned to hand over to the standby (leases and lock kept).
        self.standing_by = False

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        """Ask the worker to finish what it holds and return (safe from a signal handler)."""
        self.stopping.set()
        self.wake.set()
        self.outbox_wake.set()

    def run(self) -> int:
        # The lock comes first: a second worker on one SQLite file must say so, not fight over the port.
        if self.sqlite_lock is not None:
            self.sqlite_lock.acquire(self.handover.lock_fd if self.handover is not None else None)
        log.info(
            "worker %s started on %s (%d fetch threads, lease %d s)",
            self.id,
            self.app.engine.url.render_as_string(hide_password=True),
            self.threads,
            self.lease.total_seconds(),
        )
        try:
            if self.admin_address is not None:
                self.admin = self._start_admin(*self.admin_address)
            return self._run()
        finally:
            if self.admin is not None:
                self.admin.stop()
                self.metrics.stop()
            if self.sqlite_lock is not None and not self.standing_by:
                self.sqlite_lock.release()

    def _start_admin(self, host: str, port: int) -> AdminServer:
        try:
            admin = AdminServer(
                host,
                port,
                self._check_token,
                self._reload_now,
                self.health,
                metrics=self._scrape,
                metrics_need_token=self.metrics_need_token,
            )
        except OSError as error:
            raise UserError(
                f"The admin endpoint cannot listen on {host}:{port}: {error.strerror or error}."
            ) from None
        self.metrics.start()
        admin.start()
        bound_host, bound_port = admin.address
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        log.info("admin endpoint on http://%s:%s (reload: POST %s)", shown, bound_port, RELOAD_PATH)
        return admin

    def _run(self) -> int:
        fetcher = Fetcher(
            self.app,
            batch_mails=self.batch_mails,
            should_stop=self.stopping.is_set,
            parse_time_limit=self.parse_time_limit,
        )
        helpers = [
            threading.Thread(target=self._drain_outbox, name="postroom-outbox", daemon=True),
            threading.Thread(target=self._renew_leases, name="postroom-leases", daemon=True),
        ]
        for thread in helpers:
            thread.start()
        self.idle.watcher.start()
        if self.handover is not None:
            self._adopt(self.handover)
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="postroom-fetch") as pool:
                while not self.stopping.is_set():
                    self.wake.clear()
                    try:
                        asked = time.monotonic() >= self.next_generation_check
                        if asked:
                            self._check_generation()
                        if self._schedule(pool, fetcher) or asked:
                            # Only an answer from the database ends an outage, not a pass that skipped it.
                            self.outage.succeeded()
                    except Exception as error:
                        # A database that went away must not end the worker: it comes back.
                        if not self.outage.failed(error, "scheduler"):
                            log.exception("the scheduler failed; trying again")
                        self.stopping.wait(DATABASE_RETRY)
                    self.wake.wait(self.tick)
                    if self.standby.due() and self._nothing_for_the_engine():
                        self.standing_by = True
                        self.stop()
                if not self.standing_by:
                    with self.lock:
                        log.info("stopping: finishing %d fetch(es) in progress", len(self.in_flight))
        finally:
            for thread in helpers:
                thread.join(timeout=60)
            self.idle.watcher.stop()
            if self.standing_by:  # the standby adopts the leases held to watch mailboxes
                log.info(
                    "worker %s: nothing done for %d s; standing by without the database stack",
                    self.id,
                    self.standby.after or 0,
                )
            else:
                with self.app.transaction() as session:
                    released = release_all(session, self.id)
                log.info("worker %s stopped (%d lease(s) given back)", self.id, released)
        return 0

    # --- fetching -------------------------------------------------------------------------------

    def _schedule(self, pool: ThreadPoolExecutor, fetcher: Fetcher) -> bool:
        """Claim due profiles for the free fetch threads (and a short queue); returns whether it asked the database.

        Claims are spaced at least ``claim_size.gap()`` apart: a thread freed sooner after the last
        claim waits out the gap, so that when many short cycles end one claim serves several freed
        threads instead of one claim each. Beyond the free threads only a queue of about a quarter
        second of recent cycles is claimed (``claim_size.py``): a lease held in a long queue here
        would keep an idle worker from the profile.
        """
        with self.lock:
            free = self.claim_size.capacity() - len(self.in_flight)
        if free <= 0:
            return False
        # News from IMAP IDLE is fetched at once; polls wait out the gap since the last claim.
        if not self.idle.has_news() and self.stopping.wait(max(self.next_claim - time.monotonic(), 0.0)):
            return False
        with self.lock:
            free = self.claim_size.capacity() - len(self.in_flight)
            busy = set(self.in_flight)
        now = utcnow()
        held = self.idle.due(now, busy, free)
        if held:
            with self.app.transaction() as session:  # still ours? (and the lease extended)
                kept = renew_leases(session, self.id, held, now, self.lease)
            for profile_id in set(held) - kept:
                self.idle.let_go(profile_id)
            held = sorted(kept)
        with self.app.engine.begin() as connection:  # one Core statement: no ORM session needed
            claimed = claim_on(connection, self.id, now, self.lease, free - len(held))
        self.next_claim = time.monotonic() + self.claim_size.gap()
        for profile_id in held + claimed:
            with self.lock:
                future = pool.submit(self._fetch_one, fetcher, profile_id)
                self.in_flight[profile_id] = future
        return True

    def _fetch_one(self, fetcher: Fetcher, profile_id: int) -> FetchReport:
        if self.stopping.is_set():
            # Claimed but not started before the stop: ``release_all`` gives the lease back, still due.
            with self.lock:
                self.in_flight.pop(profile_id, None)
            return FetchReport(str(profile_id))
        started_at = utcnow()
        started = time.monotonic()
        next_at: datetime | None = None
        released: list[datetime | None] = []
        given_back = False
        ended: list[float] = []

        def finish(session: Session, end: CycleEnd) -> None:
            """Give the lease back (or keep it, to watch the folder) in the transaction that records the cycle."""
            # Out of in_flight before the lease goes (see below), and the time taken before too.
            ended.append(time.monotonic())
            with self.lock:
                self.in_flight.pop(profile_id, None)
            now = utcnow()
            due = release_after_cycle(session, self.id, end, now, started_at)
            released.append(due)
            self.idle.after_cycle(session, self.id, profile_id, now, due, self.lease, end.ok and end.can_wait)

        try:
            report = fetcher.fetch_profile(profile_id, finish=finish)
            if released:  # fetch_profile returned: its last commit gave the lease back
                next_at, given_back = released[-1], True
                self.idle.started(profile_id)
        except UserError as error:  # deleted meanwhile
            report = FetchReport(str(profile_id), error=str(error))
        except Exception as error:
            if self.outage.failed(error, f"fetch of profile {profile_id}"):
                report = FetchReport(str(profile_id), error="the database is unreachable")
            else:
                log.exception("fetch of profile %s failed unexpectedly", profile_id)
                report = FetchReport(str(profile_id), error="internal error")
        finally:
            # Measured before the lease is given back: the cycle lies wholly inside the lease.
            elapsed = (ended[-1] if given_back else time.monotonic()) - started
            # Out of in_flight before the lease goes, so the renewer never takes a lease we gave
            # back for one somebody took from us. If ``finish`` took it out already, the entry now
            # there (if any) is the profile's next cycle, handed out since (a held IDLE profile with
            # news): removing it would let the scheduler start a third one beside it.
            with self.lock:
                if not ended:
                    self.in_flight.pop(profile_id, None)
                self.cycles += 1
                self.claim_size.ended()
            try:
                if not given_back:  # the cycle ended without its commit: give the lease back alone
                    with self.app.transaction() as session:
                        now = utcnow()
                        next_at = release_profile(session, self.id, profile_id, now, started_at)
                        self.idle.let_go(profile_id)
            except Exception as error:
                if not self.outage.failed(error, f"giving back the lease of profile {profile_id}"):
                    log.exception(
                        "could not give back the lease of profile %s; it runs out in %d s",
                        profile_id,
                        self.lease.total_seconds(),
                    )
            finally:
                self.wake.set()
        if report.fetched or report.deleted or report.error:
            self.standby.busy()
        log_cycle(report, started_at, elapsed, next_at, verbose=self.verbose)
        return report

    def _renew_leases(self) -> None:
        """Extend the leases of the profiles being fetched, three times a lease, so none expires under us."""
        interval = max(self.lease.total_seconds() / 3, 0.2)
        while not self.stopping.wait(interval):
            with self.lock:
                held: dict[int, Future[FetchReport] | None] = dict(self.in_flight)
            held.update({p: None for p in self.idle.held() if p not in held})
            if not held:
                continue
            try:
                with self.app.transaction() as session:
                    kept = renew_leases(session, self.id, list(held), utcnow(), self.lease)
            except Exception as error:
                if not self.outage.failed(error, "renewing fetch leases"):
                    log.exception("renewing fetch leases failed; trying again")
                continue
            with self.lock:
                # Still the same fetch as before the renewal, so the lease was never given back meanwhile.
                lost = sorted(p for p, f in held.items() if p not in kept and self.in_flight.get(p) is f)
            for profile_id in lost:
                self.idle.let_go(profile_id)
            if lost:
                # Only a pause longer than the lease (or a clock jump) gets here; the ledger still
                # keeps a mail from being stored twice.
                log.warning("lost the fetch lease of profile(s) %s to another worker", lost)

    # --- sending --------------------------------------------------------------------------------

    def _drain_outbox(self) -> None:
        """Send due replies; when none is queued, one cheap query a second (``Outbox.anything_due``).

        A reply queued in this process (an automatic answer stored by a fetch thread) wakes the
        loop at once instead of waiting for the next poll.
        """
        outbox = Outbox(self.app, worker=self.id, should_stop=self.stopping.is_set)
        events.reply_queued.connect(self._reply_queued)
        try:
            while True:
                self.outbox_wake.clear()  # before the check, so that a stop meanwhile is not missed
                if self.stopping.is_set():
                    break
                pause = OUTBOX_POLL
                try:
                    report = outbox.send_due() if outbox.anything_due() else None
                except Exception as error:
                    if self.outage.failed(error, "outbox"):
                        pause = DATABASE_RETRY
                    else:
                        log.exception("outbox cycle failed")
                    report = None
                busy = report is not None and any(report.as_json().values())
                if busy or pause == DATABASE_RETRY:
                    self.standby.busy()
                if busy and report is not None:
                    log.info("outbox: %s", ", ".join(f"{k} {v}" for k, v in report.as_json().items() if v))
                self.outbox_wake.wait(0.05 if busy else pause)
        finally:
            events.reply_queued.disconnect(self._reply_queued)

    def _reply_queued(self, _sender: object, **_: object) -> None:
        self.outbox_wake.set()

    # --- configuration --------------------------------------------------------------------------

    def _check_generation(self) -> None:
        self.next_generation_check = time.monotonic() + self.tick
        with self.app.engine.connect() as connection:  # one Core statement: no ORM session needed
            generation = configuration.config_generation(connection)
        stale = time.monotonic() - self.last_reload > SELF_RELOAD.total_seconds()
        if generation != self.generation or stale:
            if self.generation >= 0 and generation != self.generation:
                log.info("configuration generation %d picked up", generation)
            elif self.generation < 0:
                log.info("configuration generation %d loaded", generation)
            if generation != self.generation:
                self.idle.refresh()
                self.standby.busy()
            self.generation = generation
            self.last_reload = time.monotonic()
            self._log_plugin_failures(self.app.reload_plugins().failures())
            with self.app.transaction() as session:
                moved = reschedule_to_intervals(session, utcnow())
            for name, due in moved:
                log.info(
                    "profile %s: fetch interval shortened; next fetch at %s",
                    name,
                    f"{due.astimezone():%H:%M:%S}",
                )

    def _log_plugin_failures(self, failures: list[PluginInfo]) -> None:
        """One warning per plugin that failed to load, when it starts failing (not every reload)."""
        now = {(p.name, p.error or "", p.remedy or "") for p in failures}
        for name, error, remedy in sorted(now - self.plugin_failures):
            log.warning("plugin %s is left out: %s (to remove it: %s)", name, error, remedy)
        self.plugin_failures = now

    def _check_token(self, offered: str | None) -> bool:
        with self.app.sessions() as session:
            return token_matches(session, offered)

    def _reload_now(self) -> int:
        with self.app.transaction() as session:
            generation = configuration.reload_configuration(session)
        self._check_generation()
        return generation

    def _scrape(self) -> tuple[bytes, str]:
        """/metrics: the IDLE connections gauge read from the watcher, then the whole registry."""
        set_idle_connections(self.idle.watcher.connections())
        return self.metrics.scrape()

    def health(self) -> dict[str, Any]:
        with self.app.sessions() as session:
            in_error = session.scalar(
                select(func.count())
                .select_from(MediaProfile)
                .where(MediaProfile.deleted_at.is_(None), MediaProfile.status == ProfileStatus.ERROR)
            )
        with self.lock:
            fetching = len(self.in_flight)
        return {
            "status": "ok",
            "worker": self.id,
            "generation": self.generation,
            "fetching": fetching,
            "profiles_in_error": in_error,
            "cycles": self.cycles,
            "idle_connections": self.idle.watcher.connections(),
            "idle_renewals": self.idle.watcher.renewals,
        }


def install_signal_handlers(
    worker: Worker, signal_module: Any, on: Callable[[int, Any], None] | None = None
) -> None:
    """SIGTERM and SIGINT stop the worker cleanly."""
    for name in ("SIGTERM", "SIGINT"):
        signal_module.signal(getattr(signal_module, name), on or worker.stop)
