"""What the worker tests share: ``postroom run`` as a real process, its cycles read back from its log,
a server that never answers, and what the database holds.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import IO, TypeVar

from sqlalchemy import func, select

from postroom.core.app import Postroom
from postroom.core.data.models import (
    Direction,
    FetchLedger,
    LedgerOutcome,
    MediaProfile,
    Message,
    MessageStatus,
)
from tests.support.cli import PostroomProcess

T = TypeVar("T")

#: The worker's line for one cycle with ``--verbose``: what it did, how long it took, when it started.
CYCLE_LINE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d) (?P<clock>\d\d:\d\d:\d\d),(?P<ms>\d{3}) (?P<level>[A-Z]+) "
    r"profile (?P<profile>\S+): (?P<what>.*) \((?P<elapsed>\d+\.\d+) s from (?P<start>[\d:.]+)"
    r"(?:; next try [^)]*)?\)$"
)
COUNTS = re.compile(r"fetched (\d+), stored (\d+), duplicates (\d+), quarantined (\d+), deleted (\d+)")


@dataclass(frozen=True)
class Cycle:
    """One fetch cycle of one profile as a worker logged it; ``start``/``end`` lie inside its lease."""

    worker: str
    profile: str
    start: datetime
    end: datetime
    error: str | None
    stored: int = 0


def parse_cycles(worker: str, log: str) -> list[Cycle]:
    """Every cycle in a ``postroom run --verbose`` log, in the order they ended."""
    cycles = []
    for line in log.splitlines():
        match = CYCLE_LINE.match(line)
        if match is None:
            continue
        logged = datetime.fromisoformat(f"{match['date']} {match['clock']}.{match['ms']}")
        start = datetime.combine(logged.date(), datetime.strptime(match["start"], "%H:%M:%S.%f").time())
        if start > logged + timedelta(seconds=1):
            start -= timedelta(days=1)  # the cycle began before midnight
        counts = COUNTS.fullmatch(match["what"])
        cycles.append(
            Cycle(
                worker=worker,
                profile=match["profile"],
                start=start,
                end=start + timedelta(seconds=float(match["elapsed"])),
                error=None if counts else match["what"],
                stored=int(counts[2]) if counts else 0,
            )
        )
    return cycles


def overlapping_cycles(cycles: Iterable[Cycle]) -> list[tuple[Cycle, Cycle]]:
    """Pairs of cycles of the same profile that ran at the same time."""
    by_profile: dict[str, list[Cycle]] = {}
    for cycle in cycles:
        by_profile.setdefault(cycle.profile, []).append(cycle)
    overlaps = []
    for runs in by_profile.values():
        runs.sort(key=lambda c: c.start)
        overlaps += [(a, b) for a, b in pairwise(runs) if b.start < a.end]
    return overlaps


class WorkerProcess:
    """One ``postroom run`` subprocess writing its log to a file; always ``kill()`` it in ``finally``."""

    def __init__(self, name: str, database_url: str, log_path: Path, *args: str) -> None:
        self.name = name
        self.log_path = log_path
        self._log_file: IO[bytes] = log_path.open("wb")
        self.process = PostroomProcess(
            database_url, "run", *args, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cycles(self) -> list[Cycle]:
        return parse_cycles(self.name, self.log())

    def wait_for_log(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first match of ``pattern`` in the log, waiting for it to appear (or the worker to exit)."""
        compiled = re.compile(pattern, re.MULTILINE)

        def found() -> re.Match[str] | None:
            match = compiled.search(self.log())
            if match is None and self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited ({self.process.returncode}):\n{self.log()}")
            return match

        return wait_until(found, timeout, f"worker {self.name} to log {pattern!r}", self.log)

    def wait_started(self, timeout: float = 20.0) -> None:
        self.wait_for_log(r"configuration generation \d+ loaded", timeout)

    def send_signal(self, number: int) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (if still running) and reap; safe to call twice."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log_file.close()


class Workers:
    """Starts workers for one test and kills every one still running when the test ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[WorkerProcess] = []

    def start(self, name: str, database_url: str, *args: str) -> WorkerProcess:
        worker = WorkerProcess(name, database_url, self.directory / f"worker-{name}.log", *args)
        self.started.append(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    details: Callable[[], str] = lambda: "",
    every: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{details()}")
        time.sleep(every)


# --- what got stored -------------------------------------------------------------------------------


def stored_counts(app: Postroom) -> Counter[str]:
    """How often each Message-ID is stored as an inbound message (any profile)."""
    with app.sessions() as session:
        ids = session.scalars(select(Message.message_id).where(Message.direction == Direction.INBOUND))
        return Counter(i or "" for i in ids)


def ledger_outcomes(app: Postroom) -> Counter[str]:
    with app.sessions() as session:
        rows = session.execute(select(FetchLedger.outcome, func.count()).group_by(FetchLedger.outcome))
        return Counter({LedgerOutcome(outcome).value: count for outcome, count in rows})


def quarantine_reasons(app: Postroom) -> list[str]:
    """Why each quarantined mail was quarantined (for failure messages)."""
    with app.sessions() as session:
        rows = session.scalars(select(Message.reason).where(Message.status == MessageStatus.QUARANTINED))
        return [reason or "" for reason in rows]


def profile_ids(app: Postroom) -> dict[str, int]:
    with app.sessions() as session:
        return {name: id_ for name, id_ in session.execute(select(MediaProfile.name, MediaProfile.id))}


# --- a server that accepts and never speaks --------------------------------------------------------


class SilentServer:
    """A TCP server that accepts, says nothing for ``hold`` seconds, then hangs up.

    As an IMAP server it keeps a fetch cycle busy (the client waits for the greeting), so a
    test can see which worker holds a profile's lease, and when a second connection comes.
    """

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.time())
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            self._stop.wait(self.hold)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(5)
