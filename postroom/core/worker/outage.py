"""The worker's log of a database outage: one line when it starts, a count now and then, one when it ends.

Every thread of the worker meets the outage (the scheduler, the outbox, the lease renewer, the
fetches in flight); one traceback a second from each would bury what the operator needs to read.
"""

from __future__ import annotations

import logging
import threading
import time

from postroom.core.data.db import is_outage

#: While the database stays unreachable, a line with the count of failed tries this often.
REMINDER_SECONDS = 30.0


def _reason(error: BaseException) -> str:
    """The first line of the driver's message, the part that says what is wrong."""
    current: BaseException = error
    while getattr(current, "orig", None) is not None:
        current = current.orig  # type: ignore[attr-defined]
    text = str(current).strip()
    return text.splitlines()[0] if text else type(current).__name__


class DatabaseOutage:
    """Shared by the worker's threads: they report each failed and each successful use of the database."""

    def __init__(
        self, log: logging.Logger, retry_seconds: float, reminder_seconds: float = REMINDER_SECONDS
    ) -> None:
        self.log = log
        self.retry_seconds = retry_seconds
        self.reminder_seconds = reminder_seconds
        self._lock = threading.Lock()
        self._tries = 0
        self._since = 0.0
        self._reminded = 0.0

    @property
    def ongoing(self) -> bool:
        with self._lock:
            return self._tries > 0

    def failed(self, error: BaseException, what: str) -> bool:
        """Count a failure of ``what``; False (nothing logged) unless the database is unreachable.

        The caller logs any other error itself, with its traceback: that is a bug to see.
        """
        if not is_outage(error):
            return False
        now = time.monotonic()
        with self._lock:
            self._tries += 1
            if self._tries == 1:
                self._since = self._reminded = now
                self.log.error(
                    "the database is unreachable (%s: %s); retrying every %g s",
                    what,
                    _reason(error),
                    self.retry_seconds,
                )
            elif now - self._reminded >= self.reminder_seconds:
                self._reminded = now
                self.log.warning(
                    "the database is still unreachable after %d failed tries over %.0f s (%s)",
                    self._tries,
                    now - self._since,
                    _reason(error),
                )
        return True

    def succeeded(self) -> None:
        """The database answered: end the outage, if there was one, with one line."""
        with self._lock:
            if self._tries == 0:
                return
            tries, lasted = self._tries, time.monotonic() - self._since
            self._tries = 0
        self.log.info("the database is reachable again, after %d failed tries over %.0f s", tries, lasted)
