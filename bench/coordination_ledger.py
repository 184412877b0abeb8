"""The fetch ledger of ``bench.coordination``: every fetch's worker, profile, start and end, and what they prove.

The ``bench-sleep`` protocol writes ``S pid profile t`` when a worker opens a profile's mailbox and
``E pid profile t`` when it closes it (``time.monotonic()``, one clock for all processes). A start
without an end belongs to a worker that was SIGKILLed mid-fetch; its fetch ended when it died.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fetch:
    pid: int
    profile: int
    start: float
    end: float


def read_fetches(directory: Path, died: dict[int, float] | None = None) -> list[Fetch]:
    """Every fetch in the ledger files of ``directory``; an open one ends at its worker's death (or never)."""
    died = died or {}
    fetches: list[Fetch] = []
    for path in sorted(directory.glob("ledger-*.txt")):
        open_: dict[tuple[int, int], float] = {}
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue  # a line cut short by SIGKILL
            kind, pid, profile, at = parts[0], int(parts[1]), int(parts[2]), float(parts[3])
            if kind == "S":
                open_[(pid, profile)] = at
            elif kind == "E" and (pid, profile) in open_:
                fetches.append(Fetch(pid, profile, open_.pop((pid, profile)), at))
        for (pid, profile), start in open_.items():
            fetches.append(Fetch(pid, profile, start, died.get(pid, math.inf)))
    return fetches


def double_fetches(fetches: list[Fetch]) -> list[tuple[Fetch, Fetch]]:
    """Pairs of fetches of one profile whose intervals overlap (by any two workers, or one twice)."""
    by_profile: dict[int, list[Fetch]] = defaultdict(list)
    for fetch in fetches:
        by_profile[fetch.profile].append(fetch)
    overlaps = []
    for runs in by_profile.values():
        runs.sort(key=lambda f: f.start)
        latest = runs[0]
        for fetch in runs[1:]:
            if fetch.start < latest.end:
                overlaps.append((latest, fetch))
            if fetch.end > latest.end:
                latest = fetch
    return overlaps


def takeover_times(fetches: list[Fetch], killed: int, at: float, profiles: set[int]) -> dict[int, float]:
    """For each profile the killed worker held at ``at``: seconds until another worker began to fetch it."""
    first: dict[int, float] = {}
    for fetch in fetches:
        if fetch.pid != killed and fetch.profile in profiles and fetch.start >= at:
            first[fetch.profile] = min(first.get(fetch.profile, math.inf), fetch.start - at)
    return first
