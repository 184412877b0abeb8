"""How many profiles the scheduler claims at once: its free fetch threads, plus a short queue when cycles are quick.

A claim is one transaction, spaced at least ``CLAIM_GAP`` from the last; claiming only for free
threads capped a worker at ``threads / CLAIM_GAP`` cycles a second (160 with 8 threads), far
below the 1,000 a second that 10,000 profiles polled every 10 s need (issue 16). So the scheduler
also claims a queue for the threads to take up as they free: as many cycles as the worker ended
in the last ``QUEUE_SECONDS``. A queued profile's lease is held (and renewed) like a running one's,
so no other worker fetches it meanwhile; the queue stays that short so that another, idle worker is
not kept from profiles this one would only reach later. Slow cycles (a remote server, seconds
each) make the queue nothing: then it claims for free threads only, as before.

At a low rate the gap between claims grows, up to ``MAX_CLAIM_GAP``, so that a claim still serves
about ``CYCLES_PER_CLAIM`` cycles instead of one or two (500 profiles every 10 s made a claim per
2.5 cycles at the fixed gap). A profile then starts at most that much after it fell due; news from
IMAP IDLE does not wait for the gap (the scheduler claims at once).
"""

from __future__ import annotations

import math
import time

#: The shortest time between two claims: cycles ending meanwhile are claimed for together.
CLAIM_GAP = 0.05
#: The queue holds about this many seconds of the worker's recent cycles.
QUEUE_SECONDS = 0.25
#: And never more than this many profiles per fetch thread.
QUEUE_PER_THREAD = 32
#: At a low rate the gap grows so that a claim serves about this many cycles, up to MAX_CLAIM_GAP.
CYCLES_PER_CLAIM = 8
MAX_CLAIM_GAP = 0.2
#: The recent rate is measured over windows about this long.
RATE_WINDOW = 1.0


class ClaimSize:
    """The number of profiles to hold claimed (running and queued), from the rate cycles end at."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.rate = 0.0
        self._window_start = time.monotonic()
        self._window_cycles = 0

    def ended(self, cycles: int = 1) -> None:
        """Count cycles that ended (called by the fetch threads, under the worker's lock)."""
        self._window_cycles += cycles
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed >= RATE_WINDOW:
            self.rate = self._window_cycles / elapsed
            self._window_start, self._window_cycles = now, 0

    def capacity(self) -> int:
        """Free threads are filled, and a queue of about ``QUEUE_SECONDS`` of cycles kept."""
        queue = min(math.ceil(self.rate * QUEUE_SECONDS), QUEUE_PER_THREAD * self.threads)
        return self.threads + queue

    def gap(self) -> float:
        """Seconds until the next claim: ``CLAIM_GAP``, longer when cycles end slowly."""
        if self.rate <= 0:
            return CLAIM_GAP
        return max(CLAIM_GAP, min(MAX_CLAIM_GAP, CYCLES_PER_CLAIM / self.rate))
