"""The worker's log line for a fetch cycle: one per cycle that did something or failed, every cycle with ``--verbose``."""

from __future__ import annotations

import logging
from datetime import datetime

from postroom.core.inbound.fetch import FetchReport

log = logging.getLogger("postroom.worker")


def log_cycle(
    report: FetchReport, started_at: datetime, elapsed: float, next_at: datetime | None, *, verbose: bool
) -> None:
    """One line per cycle that did something or failed; with ``--verbose``, per cycle, with its start."""
    took = f"{elapsed:.3f} s from {started_at.astimezone():%H:%M:%S.%f}" if verbose else f"{elapsed:.2f} s"
    if report.error:
        log.warning(
            "profile %s: %s (%s; next try %s)",
            report.profile,
            report.error,
            took,
            next_at.astimezone().strftime("%H:%M:%S") if next_at else "by another worker",
        )
    elif report.fetched or report.deleted or verbose:
        log.info(
            "profile %s: fetched %d, stored %d, duplicates %d, quarantined %d, deleted %d (%s)",
            report.profile,
            report.fetched,
            report.stored,
            report.duplicates,
            report.quarantined,
            report.deleted,
            took,
        )
