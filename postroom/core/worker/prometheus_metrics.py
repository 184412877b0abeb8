"""The worker's Prometheus metrics, served as ``GET /metrics`` by the admin endpoint (README, "Metrics").

This module holds everything that needs prometheus-client; core/worker/metrics.py imports it only
when the worker serves its admin endpoint (issue 18: a worker without one need not hold the library).

Why this shape:

- prometheus-client writes the text format (escaping, ``_total``/``_bucket`` suffixes, HELP/TYPE
  lines) and its parser reads it back in the tests: a solved problem, not ours to re-solve.
- One private :class:`CollectorRegistry` (:data:`REGISTRY`), never the library's global one: a
  plugin that registers its own metrics globally cannot clash with ours, and the process's
  default collectors (GC, platform) are not mixed into a scrape of postroom.
- Counters move only on the engine's blinker signals (core/contract/events.py), subscribed here in
  one place (:func:`subscribe`); no metric call is scattered through the fetch or send code. Those
  signals are sent after their commit, so a counter never counts work that was rolled back.
- What is a state rather than an event (outbox depth, leases held, profiles in error) is read from
  the database when scraped, by :class:`DatabaseCollector`, with one cheap grouped query each,
  cached for :data:`SCRAPE_CACHE_SECONDS` so a scrape storm costs the database nothing more.
- Labels are bounded: a profile gets its own ``profile`` label only among the first
  :data:`PROFILE_LABELS` profiles this worker stores mail for, the rest share ``profile="other"``;
  categories and policies are the closed sets of the retry contract and the installed policies.

The worker sets :data:`IDLE_CONNECTIONS` (``postroom_idle_connections``) through
:func:`set_idle_connections` from its IDLE watcher's count at every scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.data.models import MediaProfile, ProfileStatus, SendState, SMessageSendInfo, utcnow
from postroom.core.worker.metrics import CONTENT_TYPE, fetch_lag, profile_label

log = logging.getLogger(__name__)

#: A scrape reads the database at most this often; scrapes in between get the figures read last.
SCRAPE_CACHE_SECONDS = 5.0
#: Seconds from a mail's arrival to its commit: sub-second buckets for IDLE, minutes for polling.
LAG_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 86400.0)
#: The outbox states whose depth is reported ("sent" only grows, and is not a queue).
QUEUE_STATES = (SendState.QUEUED, SendState.SENDING, SendState.RETRY_SCHEDULED, SendState.FAILED)

REGISTRY = CollectorRegistry(auto_describe=True)

FETCH_LAG = Histogram(
    "postroom_fetch_lag_seconds",
    "Seconds from a mail's Date header to its commit in the database (clamped at 0).",
    ["profile"],
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
MAILS_STORED = Counter("postroom_mails_stored", "Inbound mails stored.", registry=REGISTRY)
MAILS_DUPLICATE = Counter(
    "postroom_mails_duplicate",
    "Fetched mails not stored again: the same mail (its content) was stored already.",
    registry=REGISTRY,
)
MAILS_QUARANTINED = Counter(
    "postroom_mails_quarantined",
    "Mails stored raw because they could not be parsed or broke a plugin.",
    registry=REGISTRY,
)
MAILS_UNROUTED = Counter(
    "postroom_mails_unrouted",
    "Stored mails no routing rule matched (held until a rule changes).",
    registry=REGISTRY,
)
SENDS_SUCCEEDED = Counter(
    "postroom_sends_succeeded", "Replies the outgoing server accepted for every recipient.", registry=REGISTRY
)
SEND_FAILURES = Counter(
    "postroom_send_failures",
    "Failed send attempts, by error category and the retry policy that decided.",
    ["category", "policy"],
    registry=REGISTRY,
)
SENDS_ABANDONED = Counter(
    "postroom_sends_abandoned",
    "Replies that will not be tried again, by error category and policy.",
    ["category", "policy"],
    registry=REGISTRY,
)
PROFILE_ERRORS = Counter(
    "postroom_profile_errors",
    "Failed fetch cycles of a profile's server, by kind (auth, tls, connection, folder, ...).",
    ["kind"],
    registry=REGISTRY,
)
IDLE_CONNECTIONS = Gauge(
    "postroom_idle_connections", "IMAP IDLE connections this worker holds open.", registry=REGISTRY
)


def set_idle_connections(count: int) -> None:
    """For the IDLE engine: how many IDLE connections this worker holds now."""
    IDLE_CONNECTIONS.set(count)


# --- the signal receivers ------------------------------------------------------------------------


def _on_stored(_sender: object, **kwargs: Any) -> None:
    MAILS_STORED.inc()
    lag = fetch_lag(kwargs.get("date"), datetime.now(UTC))
    if lag is not None:
        FETCH_LAG.labels(profile_label(int(kwargs["profile_id"]))).observe(lag)


def _on_duplicate(_sender: object, **_kwargs: Any) -> None:
    MAILS_DUPLICATE.inc()


def _on_quarantined(_sender: object, **_kwargs: Any) -> None:
    MAILS_QUARANTINED.inc()


def _on_unrouted(_sender: object, **_kwargs: Any) -> None:
    MAILS_UNROUTED.inc()


def _on_send_succeeded(_sender: object, **_kwargs: Any) -> None:
    SENDS_SUCCEEDED.inc()


def _on_send_failed(_sender: object, **kwargs: Any) -> None:
    SEND_FAILURES.labels(str(kwargs.get("category", "")), str(kwargs.get("policy", ""))).inc()


def _on_send_abandoned(_sender: object, **kwargs: Any) -> None:
    SENDS_ABANDONED.labels(str(kwargs.get("category", "")), str(kwargs.get("policy", ""))).inc()


def _on_profile_error(_sender: object, **kwargs: Any) -> None:
    PROFILE_ERRORS.labels(str(kwargs.get("kind", "unknown"))).inc()


_RECEIVERS = (
    (events.message_stored, _on_stored),
    (events.message_duplicate, _on_duplicate),
    (events.message_quarantined, _on_quarantined),
    (events.message_unrouted, _on_unrouted),
    (events.send_succeeded, _on_send_succeeded),
    (events.send_failed, _on_send_failed),
    (events.send_abandoned, _on_send_abandoned),
    (events.profile_error, _on_profile_error),
)


def subscribe() -> None:
    """Connect the counters to the engine's signals (idempotent: blinker connects a receiver once)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, weak=False)


def unsubscribe() -> None:
    for signal, receiver in _RECEIVERS:
        signal.disconnect(receiver)


# --- read from the database when scraped ---------------------------------------------------------


class DatabaseCollector(Collector):
    """Outbox depth by state, this worker's fetch leases and the profiles in error, read at scrape time.

    The figures are cached for ``cache_seconds``. A database that cannot be read gives
    ``postroom_database_up 0`` and no other figures from it, instead of failing the whole scrape:
    the counters above are still worth having during an outage.
    """

    def __init__(self, app: Postroom, worker: str, cache_seconds: float = SCRAPE_CACHE_SECONDS) -> None:
        self.app = app
        self.worker = worker
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._cached: list[Metric] = []

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration; the families are made when scraped

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                self._cached = self._read()
                self._read_at = time.monotonic()
            yield from self._cached

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily("postroom_database_up", "Whether the last scrape could read the database.")
        try:
            figures = self._query()
        except Exception:
            log.warning("metrics: the database could not be read for a scrape", exc_info=True)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *figures]

    def _query(self) -> list[Metric]:
        now = utcnow()
        with self.app.sessions() as session:
            depth = dict(
                session.execute(
                    select(SMessageSendInfo.state, func.count())
                    .where(SMessageSendInfo.state.in_([str(s) for s in QUEUE_STATES]))
                    .group_by(SMessageSendInfo.state)
                ).all()
            )
            leases = session.scalar(
                select(func.count())
                .select_from(MediaProfile)
                .where(MediaProfile.lease_owner == self.worker, MediaProfile.lease_expires_at > now)
            )
            in_error = session.scalar(
                select(func.count())
                .select_from(MediaProfile)
                .where(MediaProfile.deleted_at.is_(None), MediaProfile.status == ProfileStatus.ERROR)
            )
        outbox = GaugeMetricFamily(
            "postroom_outbox_depth", "Outgoing replies in the outbox, by state.", labels=["state"]
        )
        for state in QUEUE_STATES:
            outbox.add_metric([str(state)], int(depth.get(str(state), 0)))
        held = GaugeMetricFamily(
            "postroom_fetch_leases_held", "Fetch leases this worker holds now.", labels=["worker"]
        )
        held.add_metric([self.worker], int(leases or 0))
        errors = GaugeMetricFamily(
            "postroom_profiles_in_error", "Profiles whose last fetch or connection check failed."
        )
        errors.add_metric([], int(in_error or 0))
        return [outbox, held, errors]


class RegisteredMetrics:
    """The counters subscribed and one worker's database collector registered, until :meth:`stop`."""

    def __init__(self, app: Postroom, worker: str) -> None:
        self.collector = DatabaseCollector(app, worker)
        # The "_created" timestamp series double a scrape for nothing Prometheus' rate() needs.
        disable_created_metrics()
        subscribe()
        REGISTRY.register(self.collector)

    def stop(self) -> None:
        REGISTRY.unregister(self.collector)

    def scrape(self) -> tuple[bytes, str]:
        """The whole registry in the Prometheus text format, and its media type."""
        return generate_latest(REGISTRY), CONTENT_TYPE
