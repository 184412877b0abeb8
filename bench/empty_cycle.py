"""The cost of an empty fetch cycle: database transactions and worker CPU per cycle of a mailbox with nothing new.

    python -m bench.empty_cycle [--profiles 500] [--interval 10] [--duration 20] [--threads 8] [--pg-url URL]
    python -m bench.empty_cycle --profiles 10000 --interval 10     # issue 16's "one worker, 10,000 profiles"

Makes a throw-away PostgreSQL database with ``--profiles`` maildir profiles, each on its own empty
local Maildir (no server: only the engine's own work is counted), runs one real ``Worker`` (the
code ``postroom run`` runs, all its threads) inside this process. First, for ``--idle`` seconds,
no profile is due (each is held back a day): the worker's CPU then is its fixed cost per second
(the scheduler's claims and configuration checks, the outbox's polling, the lease renewer). Then
every profile is made due; once each has been fetched, for ``--duration`` seconds it counts:

- transactions, from SQLAlchemy's ``begin`` events on the worker's engine (every transaction the
  worker opens, the outbox thread and the scheduler included), cross-checked against PostgreSQL's
  own ``pg_stat_database`` (xact_commit + xact_rollback) for the scratch database;
- worker CPU, ``time.process_time`` of this process (the bench's main thread only sleeps meanwhile);
- cycles, the worker's own counter;
- CPU by thread (``pthread_getcpuclockid``): the fetch threads, the scheduler, the outbox, the
  lease renewer, and the rest, so a regression shows where it is;
- the database's CPU: the PostgreSQL backends serving the scratch database (``pg_stat_activity``),
  read from ``/proc/<pid>/stat`` when the server runs on this machine (else left out). Worker and
  database CPU per cycle together say how many cycles a second two cores can carry at all, a
  figure the machine's other load does not move the way it moves "cycles achieved".

It prints both per cycle, the worker's CPU also split into the fixed cost per second (the idle
phase) and the marginal cost per cycle (the loaded phase's CPU less that fixed cost over its
duration), next to the cost of one trivial transaction (``SELECT 1``) measured in
the same run on the same engine, and the cycles achieved against those due (profiles / interval;
a profile is due again ``interval`` seconds after its last cycle started, so 100 % is the most).
It also prints the machine's load average before and after: on a shared machine the wall-clock
figure (cycles achieved) suffers from other processes, the per-cycle CPU and counts much less.
Target (issue 16): at most 2 transactions and 1 ms of worker CPU per empty cycle, and, with
``--profiles 10000 --interval 10``, at least 95 % of the cycles due achieved by one worker.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, func, select, text, update

from bench.scratch import DEFAULT_PG_URL, scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import MediaProfile, utcnow
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.worker.scheduler import Worker


class TransactionCounter:
    """Counts the transactions begun on an engine (any thread)."""

    def __init__(self, app: Postroom) -> None:
        self.count = 0
        self.lock = threading.Lock()
        event.listen(app.engine, "begin", self._begun)

    def _begun(self, _connection: object) -> None:
        with self.lock:
            self.count += 1


def thread_cpu() -> dict[str, float]:
    """CPU seconds each live thread of this process has used, by the thread's role."""
    roles: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            used = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, ProcessLookupError):
            continue  # ended meanwhile
        role = _role(thread.name)
        roles[role] = roles.get(role, 0.0) + used
    return roles


def _role(name: str) -> str:
    if name.startswith("postroom-fetch"):
        return "fetch threads"
    if name == "bench-worker":
        return "scheduler"
    if name in ("postroom-outbox", "postroom-leases"):
        return name.removeprefix("postroom-")
    return "other"


def backend_cpu(app: Postroom) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends connected to this database (None if not local)."""
    with app.engine.connect() as connection:
        pids = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        ).scalars().all()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None  # another machine's, or not ours to read
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def make_profiles(app: Postroom, directory: Path, count: int, interval: int) -> None:
    with app.transaction() as session:
        for number in range(count):
            folder = directory / f"md{number:05}"
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True)
            create_profile(
                session,
                app.plugins,
                DEFAULT_CONTACT_CENTER_ID,
                f"empty{number:05}",
                ProfileFields(fetch_protocol="maildir", incoming_folder=str(folder), fetch_interval=interval),
            )


def server_transactions(app: Postroom) -> int:
    """PostgreSQL's count of transactions ended in this database (its statistics lag up to a second)."""
    with app.engine.connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        value = connection.execute(
            text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            )
        ).scalar_one()
    return int(value)


def trivial_transaction(app: Postroom, repeat: int = 2000) -> tuple[float, float]:
    """Wall and CPU milliseconds of one ``BEGIN; SELECT 1; COMMIT`` on the worker's engine."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        with app.engine.begin() as connection:
            connection.execute(text("SELECT 1"))
    return (time.perf_counter() - wall) * 1000 / repeat, (time.process_time() - cpu) * 1000 / repeat


def wait_all_fetched(app: Postroom, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with app.sessions() as session:
            waiting = session.scalar(select(func.count()).where(MediaProfile.last_fetch_at.is_(None)))
        if waiting == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{waiting} profiles not fetched after {timeout:.0f} s")
        time.sleep(0.5)


def hold_back(app: Postroom, due: bool) -> None:
    """Make every profile not due for a day (the idle phase), or due at once (the loaded phase)."""
    later = None if due else utcnow() + timedelta(days=1)
    with app.engine.begin() as connection:
        connection.execute(update(MediaProfile).values(next_fetch_at=later))


def idle_phase(app: Postroom, seconds: float) -> tuple[float, dict[str, float]]:
    """The worker's fixed CPU with no profile due: milliseconds per second, in all and by thread."""
    time.sleep(2)  # past the start (plugins loaded, the first claim and configuration check)
    threads_before, cpu = thread_cpu(), time.process_time()
    time.sleep(seconds)
    used, threads_after = time.process_time() - cpu, thread_cpu()
    shares = {role: (spent - threads_before.get(role, 0.0)) * 1000 / seconds for role, spent in threads_after.items()}
    # Threads that started and ended meanwhile (a helper thread made per poll) are in the total only.
    shares["ended threads"] = max(used * 1000 / seconds - sum(shares.values()), 0.0)
    return used * 1000 / seconds, shares


def run(args: argparse.Namespace, directory: Path) -> int:
    with scratch_postgresql(args.pg_url, prefix="postroom_empty") as url:
        setup = Postroom(url)
        setup.init()
        make_profiles(setup, directory, args.profiles, args.interval)
        hold_back(setup, due=False)
        setup.dispose()

        app = Postroom(url)
        tx_wall, tx_cpu = trivial_transaction(app)
        counter = TransactionCounter(app)
        worker = Worker(app, threads=args.threads, lease=timedelta(seconds=60))
        thread = threading.Thread(target=worker.run, name="bench-worker")
        thread.start()
        try:
            idle_load = load_average()
            fixed, fixed_by_thread = idle_phase(app, args.idle)
            hold_back(app, due=True)
            wait_all_fetched(app, 120 + args.profiles / 50)
            time.sleep(args.interval)  # settle into the steady state
            time.sleep(1.1)  # let the server's statistics catch up before the first reading
            load_before = load_average()
            before = (counter.count, worker.cycles, time.process_time(), server_transactions(app))
            threads_before, database_before = thread_cpu(), backend_cpu(app)
            started = time.monotonic()
            time.sleep(args.duration)
            after = (counter.count, worker.cycles, time.process_time())
            threads_after, database_after = thread_cpu(), backend_cpu(app)
            elapsed = time.monotonic() - started
            load_after = load_average()
        finally:
            worker.stop()
            thread.join(120)
        time.sleep(1.1)
        # The server count ends after the worker stopped: subtract its shutdown and our own readings.
        server_after = server_transactions(app)
        app.dispose()

    transactions = after[0] - before[0]
    cycles = after[1] - before[1]
    cpu = after[2] - before[2]
    due = args.profiles / args.interval
    print(
        f"{args.profiles} empty maildir profiles, interval {args.interval} s, one worker "
        f"({args.threads} fetch threads), PostgreSQL, {elapsed:.1f} s measured"
    )
    print(f"cycles       {cycles} ({cycles / elapsed:.1f}/s; {due:.1f}/s due: {cycles / elapsed / due:.0%})")
    if cycles == 0:
        raise SystemExit("no cycles ran")
    print(
        f"transactions {transactions / cycles:.2f} per cycle ({transactions} begun; "
        f"PostgreSQL counted {server_after - before[3]} incl. shutdown)"
    )
    print(f"worker CPU   {cpu * 1000 / cycles:.2f} ms per cycle ({cpu / elapsed:.0%} of one core)")
    shares = {role: used - threads_before.get(role, 0.0) for role, used in threads_after.items()}
    print(
        "  by thread  "
        + ", ".join(f"{role} {used * 1000 / cycles:.2f}" for role, used in sorted(shares.items(), key=lambda s: -s[1]))
        + " ms per cycle"
    )
    marginal = (cpu * 1000 - fixed * elapsed) / cycles
    print(
        f"  fixed      {fixed:.2f} ms per second with no profile due ({args.idle:.0f} s before the load; "
        + ", ".join(f"{role} {used:.2f}" for role, used in sorted(fixed_by_thread.items(), key=lambda s: -s[1]))
        + f"; load average {idle_load})"
    )
    print(
        f"  marginal   {marginal:.2f} ms per cycle above that (the per-cycle figure less "
        f"{fixed * elapsed / cycles:.2f} ms: the fixed cost shared among {cycles / elapsed:.0f} cycles a second)"
    )
    if database_before is not None and database_after is not None:
        database = (database_after - database_before) * 1000 / cycles
        carried = 2000 / (cpu * 1000 / cycles + database)
        print(
            f"database CPU {database:.2f} ms per cycle (PostgreSQL backends); worker and database "
            f"together: two cores carry at most {carried:.0f} cycles/s"
        )
    print(f"one trivial transaction (BEGIN; SELECT 1; COMMIT): {tx_wall:.3f} ms wall, {tx_cpu:.3f} ms CPU")
    print(
        f"ratios       a cycle's CPU = {cpu * 1000 / cycles / tx_cpu:.1f} trivial transactions' CPU; "
        f"load average {load_before} before, {load_after} after"
    )
    achieved = cycles / elapsed / due
    met = transactions / cycles <= 2 and cpu * 1000 / cycles <= 1
    print(f"target       <= 2 transactions and <= 1 ms CPU per cycle: {'met' if met else 'MISSED'}")
    print(f"             >= 95 % of the cycles due achieved: {'met' if achieved >= 0.95 else 'MISSED'}")
    return 0 if met and achieved >= 0.95 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=500, help="maildir profiles, one empty Maildir each")
    parser.add_argument("--interval", type=int, default=10, help="fetch interval of every profile, s (10)")
    parser.add_argument("--duration", type=float, default=20.0, help="how long the steady state is measured, s")
    parser.add_argument("--idle", type=float, default=10.0, help="how long the fixed cost is measured first, s")
    parser.add_argument("--threads", type=int, default=8, help="the worker's fetch threads (8)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for the scratch database")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="postroom-empty-"))
    try:
        return run(args, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
