"""The engine's side of the standby (``standby_switch.py``): when it may stand by, and what it hands over.

A mixin of ``scheduler.Worker``, apart so that the scheduler's module stays about scheduling.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, exists, or_, select

from postroom.core.data.models import MediaProfile, OAuthGrant, utcnow
from postroom.core.outbound.outbox import Outbox
from postroom.core.worker.idle_schedule import IdleSchedule
from postroom.core.worker.leases import adopt_leases
from postroom.core.worker.outage import DatabaseOutage
from postroom.core.worker.sqlite_lock import SqliteWorkerLock
from postroom.core.worker.standby_switch import Handover, StandbyClock, standby_protocols

if TYPE_CHECKING:
    from postroom.core.app import Postroom
    from postroom.core.inbound.fetch import FetchReport

log = logging.getLogger("postroom.worker")


def engine_still_needed(
    connection: Connection, worker: str, now: datetime, horizon: timedelta, protocols: set[str]
) -> bool:
    """Whether a profile only the engine can fetch is due within ``horizon``, or held by this worker.

    Such a profile (another protocol, or a login with an access token, which comes from a hook of
    the loaded plugins) would wake the engine as soon as the standby claimed it: the engine keeps
    running instead, so that a profile polled more often than ``--standby-after`` keeps it awake
    rather than starting it again every cycle.
    """
    needs_engine = or_(
        MediaProfile.fetch_protocol.not_in(sorted(protocols)),
        exists().where(OAuthGrant.media_profile_id == MediaProfile.id),
    )
    soon = or_(
        MediaProfile.next_fetch_at.is_(None),
        MediaProfile.next_fetch_at < now + horizon,
        MediaProfile.lease_owner == worker,
    )
    query = select(MediaProfile.id).where(MediaProfile.can_fetch, needs_engine, soon).limit(1)
    return connection.scalar(query) is not None


class EngineStandby:
    """What ``Worker`` does about its standby; the attributes below are the worker's own."""

    app: Postroom
    id: str
    lease: timedelta
    threads: int
    tick: float
    verbose: bool
    generation: int
    lock: threading.Lock
    in_flight: dict[int, Future[FetchReport]]
    idle: IdleSchedule
    outage: DatabaseOutage
    standby: StandbyClock
    sqlite_lock: SqliteWorkerLock | None
    plugin_failures: set[tuple[str, str, str]]

    def _adopt(self, handover: Handover) -> None:
        """Take over the profiles the standby held to watch: renewed at once, watched, news fetched now."""
        log.info("worker %s: %s; the engine takes over", self.id, handover.reason or "woken")
        self.idle.watcher.unsupported.update(handover.unsupported)
        # Said once already by the image before: not again at every wake.
        self.plugin_failures = {(name, error, remedy) for name, error, remedy in handover.plugin_failures}
        try:
            with self.app.transaction() as session:
                held = adopt_leases(session, self.id, utcnow(), self.lease)
        except Exception as error:  # the leases run out and are claimed again, by this worker or another
            if not self.outage.failed(error, "adopting the standby's leases"):
                log.exception("could not adopt the standby's leases")
            return
        self.idle.adopt(held, set(handover.news))

    def _nothing_for_the_engine(self) -> bool:
        """Whether the standby can do all that is left: no fetch running, no reply due, no profile
        due soon or held that only the engine can fetch. If not, the clock starts again."""
        with self.lock:
            fetching = bool(self.in_flight)
        protocols = standby_protocols(self.app.plugins)
        needed = (
            fetching
            or self.app.plugins.tokens_without_grant()
            or Outbox(self.app, worker=self.id).anything_due()
        )
        if not needed:
            with self.app.engine.connect() as connection:
                horizon = timedelta(seconds=self.standby.after or 0)
                needed = engine_still_needed(connection, self.id, utcnow(), horizon, set(protocols))
        if needed:
            self.standby.busy()
        return not needed

    def handover_to_standby(self, database_url: str, argv: list[str], log_format: str) -> Handover:
        """What the standby starts from (after :meth:`run` returned with ``standing_by`` set)."""
        return Handover(
            worker=self.id,
            database_url=database_url,
            argv=argv,
            lease=self.lease.total_seconds(),
            threads=self.threads,
            tick=self.tick,
            idle_renew=self.idle.watcher.renew_every,
            standby_after=self.standby.after or 0,
            verbose=self.verbose,
            log_format=log_format,
            generation=self.generation,
            protocols=standby_protocols(self.app.plugins),
            lock_fd=self.sqlite_lock.descriptor() if self.sqlite_lock is not None else None,
            unsupported=sorted(self.idle.watcher.unsupported),
            plugin_failures=sorted(self.plugin_failures),
            disabled=sorted(self.app.disabled_plugin_names()),
        )
