"""The worker's Prometheus metrics as the worker sees them: started with its admin endpoint, scraped by it.

The counters, the registry and the database collector live in core/worker/prometheus_metrics.py,
which this module imports only when :meth:`WorkerMetrics.start` runs, that is when the worker
serves ``/metrics``: prometheus-client and the metric objects hold about 2 MiB that a worker
without an admin endpoint never uses (issue 18). Counters count only from that start anyway (the
signal receivers are connected there). What needs no prometheus-client (the bounded ``profile``
label, the lag of a Date header) stays here, importable on its own.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postroom.core.app import Postroom
    from postroom.core.worker.prometheus_metrics import RegisteredMetrics

#: The media type of a scrape: the text format 0.0.4, which every Prometheus version reads (2.x does
#: not know the library's newer "1.0.0"; the body is the same, as no name here needs UTF-8 escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: How many profiles get a ``profile`` label of their own on the fetch-lag histogram; the rest are "other".
PROFILE_LABELS = 20
OTHER_PROFILES = "other"


class WorkerMetrics:
    """The metrics of one running worker: subscribes the counters and adds its database collector."""

    def __init__(self, app: Postroom, worker: str) -> None:
        self.app = app
        self.worker = worker
        self._registered: RegisteredMetrics | None = None

    def start(self) -> None:
        self._started()

    def _started(self) -> RegisteredMetrics:
        if self._registered is None:
            from postroom.core.worker.prometheus_metrics import RegisteredMetrics

            self._registered = RegisteredMetrics(self.app, self.worker)
        return self._registered

    def stop(self) -> None:
        if self._registered is not None:
            self._registered.stop()
            self._registered = None

    def scrape(self) -> tuple[bytes, str]:
        """The whole registry in the Prometheus text format, and its media type."""
        return self._started().scrape()


def set_idle_connections(count: int) -> None:
    """For the IDLE engine: how many IDLE connections this worker holds now (read when scraped)."""
    from postroom.core.worker.prometheus_metrics import IDLE_CONNECTIONS

    IDLE_CONNECTIONS.set(count)


class ProfileLabels:
    """A bounded ``profile`` label: the first ``limit`` profiles seen keep their id, later ones are "other".

    First come rather than busiest: the set never changes once full, so a series never moves
    between labels, and the number of series stays at ``limit + 1`` whatever the number of profiles.
    """

    def __init__(self, limit: int = PROFILE_LABELS) -> None:
        self.limit = limit
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, profile_id: int) -> str:
        with self._lock:
            if profile_id in self._seen:
                return str(profile_id)
            if len(self._seen) < self.limit:
                self._seen.add(profile_id)
                return str(profile_id)
        return OTHER_PROFILES


profile_label = ProfileLabels()


def fetch_lag(date: datetime | None, now: datetime) -> float | None:
    """Seconds from a Date header to ``now``; None without one. A Date in the future (a sender's clock) is 0."""
    if date is None:
        return None
    if date.tzinfo is None:  # "-0000": the sender did not say; read as UTC
        date = date.replace(tzinfo=UTC)
    return max((now - date).total_seconds(), 0.0)
