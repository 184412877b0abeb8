"""Coordination cost of many workers on one PostgreSQL: statements per profile, lease takeover, double fetches.

    python -m bench.coordination [--sizes 100,1000,10000] [--workers 1,2,4] [--interval 120] [--lease 10]
                                 [--window 20] [--warmup 5] [--threads 8] [--sleep 0.01]
                                 [--mail-share 0.05] [--mails 3] [--no-takeover] [--pg-url URL]

PostgreSQL is the only coordinator (issue 16, "the scale proof"). For each size, a throw-away
database with that many profiles on the ``bench-sleep`` protocol (``bench.coordination_protocol``:
each fetch a short sleep, and on a share of fetches a few new mails, stored as any mail is). For
each worker count, that many worker processes (``bench.coordination_worker``: the ``Worker``
``postroom run`` runs, each its own process) run on it. Every profile's next fetch is first spread
evenly over one interval, so the window measures the steady state without a start-up rush.

Measured over ``--window`` seconds after ``--warmup``:

- coordinator statements per profile per second: on the workers' side every statement sent and
  those that touch a fetch lease (SQLAlchemy events in each worker, written to a file twice a
  second); on the database's side transactions (``pg_stat_database``) and row updates of
  ``media_profile`` (``pg_stat_user_tables``; claims and releases are updates). pg_stat_statements
  would need ``shared_preload_libraries`` and a server restart, which a shared server forbids;
- fetch cycles achieved against those due (profiles / interval), worker CPU per cycle;
- lease takeover (with two or more workers, unless ``--no-takeover``): one worker is SIGKILLed at the
  end of the window; for each profile it held then, the time until another worker begins to fetch
  it (from the ledger), against the bound lease + interval;
- double fetches: the fetch ledger (start and end of every fetch, every worker) must show no two
  fetches of one profile overlapping.

It prints the figures and the ratio of the largest size's statements per profile-second to the
smallest's (must-show: at most 1.3). Nothing is asserted on time; exit status 1 on a double fetch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from sqlalchemy import text

from bench import coordination_protocol
from bench.coordination_ledger import double_fetches, read_fetches, takeover_times
from bench.scratch import DEFAULT_PG_URL, scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.models import MediaProfile, utcnow
from postroom.core.data.profiles import ProfileFields, create_profile

TABLE = MediaProfile.__tablename__


@dataclass
class Run:
    """One size on one number of workers."""

    profiles: int
    workers: int
    window: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    database: dict[str, float] = field(default_factory=dict)
    fetches: int = 0
    doubles: int = 0
    takeover: list[float] | None = None
    held: int = 0
    backlog: float = 0.0
    held_due: float = 0.0

    def per_profile_second(self, value: float) -> float:
        return value / self.window / self.profiles


def bench_app(url: str) -> Postroom:
    return Postroom(url, extra_plugins=[(coordination_protocol.NAME, coordination_protocol)])


def make_profiles(app: Postroom, count: int, interval: int) -> None:
    fields = ProfileFields(
        fetch_protocol=coordination_protocol.NAME, fetch_interval=interval, delete_on_fetch=True
    )
    for start in range(0, count, 1000):
        with app.transaction() as session:
            for number in range(start, min(start + 1000, count)):
                create_profile(session, app.plugins, DEFAULT_CONTACT_CENTER_ID, f"c{number:05}", fields)


def spread_schedule(app: Postroom, interval: int, count: int) -> None:
    """Every profile free and due once within the next interval, evenly spaced: the steady state at once."""
    with app.engine.begin() as connection:
        connection.execute(
            text(
                f"UPDATE {TABLE} SET lease_owner = NULL, lease_expires_at = NULL, last_fetch_at = :now, "
                "next_fetch_at = :now + (id % :count) * (:interval / :count) * interval '1 second'"
            ),
            {"now": utcnow(), "interval": float(interval), "count": count},
        )
        # Report these row updates at this commit: a backend otherwise holds its statistics until
        # its next transaction, which would put this one-off update inside the measured window.
        connection.execute(text("SELECT pg_stat_force_next_flush()"))


def database_counts(app: Postroom) -> dict[str, float]:
    """PostgreSQL's own counters for this database (its statistics lag up to a second)."""
    with app.engine.connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        xacts = connection.execute(
            text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            )
        ).scalar_one()
        updates, scans = connection.execute(
            text(
                "SELECT n_tup_upd, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) "
                "FROM pg_stat_user_tables WHERE relname = :table"
            ),
            {"table": TABLE},
        ).one()
    return {"transactions": xacts, "profile_updates": updates, "profile_scans": scans}


def worker_counts(directory: Path) -> dict[int, dict[str, float]]:
    counts = {}
    for path in directory.glob("counts-*.json"):
        counts[int(path.stem.split("-")[1])] = json.loads(path.read_text())
    return counts


def summed(counts: dict[int, dict[str, float]]) -> dict[str, float]:
    keys = ("statements", "lease_statements", "transactions", "cycles", "cpu")
    return {key: sum(c[key] for c in counts.values()) for key in keys}


def start_workers(
    url: str, directory: Path, args: argparse.Namespace, count: int
) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "BENCH_LEDGER": str(directory),
        "BENCH_SLEEP": str(args.sleep),
        "BENCH_MAIL_SHARE": str(args.mail_share),
        "BENCH_MAILS": str(args.mails),
    }
    command = [sys.executable, "-m", "bench.coordination_worker", url, str(directory)]
    command += ["--threads", str(args.threads), "--lease", str(args.lease)]
    processes = []
    for number in range(count):
        with (directory / f"worker{number}.log").open("wb") as log:
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while len(worker_counts(directory)) < count:
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            logs = "\n".join(p.read_text() for p in directory.glob("worker*.log"))
            raise SystemExit(f"the workers did not start:\n{logs}")
        time.sleep(0.2)
    return processes


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def kill_one(
    app: Postroom, directory: Path, victim: subprocess.Popen[bytes], args: argparse.Namespace, run: Run
) -> float:
    """SIGKILL ``victim``, then wait until every profile it held was begun by another worker (or the bound)."""
    name = worker_counts(directory)[victim.pid]["worker"]
    with app.engine.connect() as connection:  # kill it while it holds a lease (at most 10 s of asking)
        holding = text(f"SELECT count(*) FROM {TABLE} WHERE lease_owner = :w")
        deadline = time.monotonic() + 10
        while not connection.execute(holding, {"w": name}).scalar_one() and time.monotonic() < deadline:
            connection.commit()
    at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with app.engine.connect() as connection:
        held = set(
            connection.execute(text(f"SELECT id FROM {TABLE} WHERE lease_owner = :w"), {"w": name}).scalars()
        )
        # When the held profiles were due, and how far behind the fleet was: a profile whose lease
        # ran out is taken over in its turn among the due ones.
        latest = connection.execute(
            text(f"SELECT max(next_fetch_at) FROM {TABLE} WHERE lease_owner = :w"), {"w": name}
        ).scalar_one()
        oldest = connection.execute(
            text(
                f"SELECT min(next_fetch_at) FROM {TABLE} WHERE lease_owner IS NULL AND next_fetch_at <= :now"
            ),
            {"now": utcnow()},
        ).scalar_one()
    run.held = len(held)
    if oldest is not None:  # the column holds UTC without its zone
        run.backlog = (utcnow() - oldest.replace(tzinfo=UTC)).total_seconds()
    if latest is not None:
        run.held_due = (latest.replace(tzinfo=UTC) - utcnow()).total_seconds()
    bound = args.lease + args.interval
    deadline = time.monotonic() + bound + 5
    while time.monotonic() < deadline:
        taken = takeover_times(read_fetches(directory), victim.pid, at, held)
        if len(taken) == len(held):
            break
        time.sleep(0.5)
    taken = takeover_times(read_fetches(directory), victim.pid, at, held)
    run.takeover = sorted(taken.values()) + [float("inf")] * (len(held) - len(taken))
    return at


def measure(url: str, base: Path, args: argparse.Namespace, profiles: int, workers: int) -> Run:
    run = Run(profiles, workers)
    directory = base / f"p{profiles}-w{workers}"
    directory.mkdir()
    app = bench_app(url)
    spread_schedule(app, args.interval, profiles)
    processes = start_workers(url, directory, args, workers)
    died: dict[int, float] = {}
    try:
        time.sleep(args.warmup)
        before, database_before, started = (
            summed(worker_counts(directory)),
            database_counts(app),
            time.monotonic(),
        )
        time.sleep(args.window)
        after, database_after = summed(worker_counts(directory)), database_counts(app)
        run.window = time.monotonic() - started
        run.counts = {key: after[key] - before[key] for key in after}
        run.database = {key: database_after[key] - database_before[key] for key in database_after}
        if workers > 1 and args.takeover:
            victim = processes[-1]
            died[victim.pid] = kill_one(app, directory, victim, args, run)
    finally:
        stop_workers(processes)
        app.dispose()
    fetches = read_fetches(directory, died)
    run.fetches = len(fetches)
    doubles = double_fetches(fetches)
    run.doubles = len(doubles)
    for first, second in doubles[:5]:
        print(f"  DOUBLE FETCH of profile {first.profile}: {first} and {second}")
    return run


def show(run: Run, args: argparse.Namespace) -> None:
    counts, database = run.counts, run.database
    cycles = counts["cycles"]
    due = run.profiles / args.interval
    pps = run.per_profile_second
    kept_up = cycles / run.window / due
    print(
        f"{run.profiles:>6} profiles, {run.workers} worker(s): cycles {kept_up:.0%} of due "
        f"({cycles / run.window:.1f}/s of {due:.1f}/s)"
        + ("  [behind: per-second figures understate the cost]" if kept_up < 0.95 else "")
    )
    print(
        f"{'':>9}per profile-second: statements {pps(counts['statements']):.4f} "
        f"(lease {pps(counts['lease_statements']):.4f}); PostgreSQL: transactions "
        f"{pps(database['transactions']):.4f}, profile row updates {pps(database['profile_updates']):.4f}"
    )
    per_cycle = max(cycles, 1)
    print(
        f"{'':>9}per cycle: statements {counts['statements'] / per_cycle:.1f} "
        f"(lease {counts['lease_statements'] / per_cycle:.1f}), PostgreSQL transactions "
        f"{database['transactions'] / per_cycle:.1f}, worker CPU {counts['cpu'] * 1000 / per_cycle:.2f} ms"
    )
    if run.takeover is not None:
        worst = max(run.takeover, default=0.0)
        bound = args.lease + args.interval
        print(
            f"{'':>9}SIGKILL of one worker holding {run.held} lease(s): taken over after max {worst:.2f} s "
            f"(lease {args.lease} s; bound lease + interval = {bound} s: {'met' if worst <= bound else 'MISSED'}; "
            f"the oldest due profile had waited {run.backlog:.1f} s; the held ones were due by "
            f"{run.held_due:+.1f} s)"
        )
    print(f"{'':>9}ledger: {run.fetches} fetches, {run.doubles} double fetch(es)")


MEASURES: list[tuple[str, Callable[[Run], float]]] = [
    ("statements", lambda r: r.counts["statements"]),
    ("lease statements", lambda r: r.counts["lease_statements"]),
    ("db transactions", lambda r: r.database["transactions"]),
    ("profile row updates", lambda r: r.database["profile_updates"]),
]


def ratios(runs: list[Run], args: argparse.Namespace) -> None:
    print("\nlargest size / smallest, per profile-second and [per cycle] (must-show: at most 1.3):")
    for workers in args.workers:
        mine = sorted((r for r in runs if r.workers == workers), key=lambda r: r.profiles)
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        parts = []
        for label, value in MEASURES:
            second = large.per_profile_second(value(large)) / small.per_profile_second(value(small))
            cycle = (value(large) / large.counts["cycles"]) / (value(small) / small.counts["cycles"])
            parts.append(f"{label} {second:.2f} [{cycle:.2f}]")
        print(f"  {workers} worker(s), {large.profiles} / {small.profiles}: " + ", ".join(parts))


def fit(runs: list[Run], value: Callable[[Run], float]) -> tuple[float, float]:
    """Least squares of ``value`` per second = a per worker (at rest) + b per fetch cycle; returns (a, b)."""
    rows = [(r.workers, r.counts["cycles"] / r.window, value(r) / r.window) for r in runs]
    ww = sum(w * w for w, _, _ in rows)
    wc = sum(w * c for w, c, _ in rows)
    cc = sum(c * c for _, c, _ in rows)
    wy = sum(w * y for w, _, y in rows)
    cy = sum(c * y for _, c, y in rows)
    determinant = ww * cc - wc * wc
    if len(rows) < 2 or not determinant:
        return float("nan"), float("nan")
    return (wy * cc - wc * cy) / determinant, (ww * cy - wc * wy) / determinant


def decomposition(runs: list[Run]) -> None:
    """The cost split into a per worker at rest and b per cycle, over every run and per size.

    b is the coordination cost of one fetch of one profile whatever the machine kept up with, so
    "flat from the smallest size to the largest" is b of the largest over b of the smallest.
    """
    if len({r.workers for r in runs}) < 2:
        return  # a and b cannot be told apart
    print("\nfitted: per second = a x workers (at rest) + b x fetch cycles")
    sizes = sorted({r.profiles for r in runs})
    for label, value in MEASURES:
        a, b = fit(runs, value)
        by_size = [fit([r for r in runs if r.profiles == size], value)[1] for size in sizes]
        each = ", ".join(f"{size}: {b_size:.2f}" for size, b_size in zip(sizes, by_size, strict=True))
        flat = f"; largest / smallest {by_size[-1] / by_size[0]:.2f}" if len(sizes) > 1 and by_size[0] else ""
        print(f"  {label:<20} a = {a:6.2f}/worker-s, b = {b:5.2f}/cycle (b by size: {each}{flat})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000", help="profile counts (100,1000,10000)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts (1,2,4)")
    parser.add_argument("--interval", type=int, default=120, help="every profile's fetch interval, s (120)")
    parser.add_argument("--lease", type=int, default=10, help="the workers' --lease, s (10; 5 is the least)")
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds per run (20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the window (5)")
    parser.add_argument("--threads", type=int, default=8, help="each worker's --threads (8)")
    parser.add_argument("--sleep", type=float, default=0.01, help="seconds each fetch sleeps (0.01)")
    parser.add_argument(
        "--mail-share", type=float, default=0.05, help="share of fetches that find mail (0.05)"
    )
    parser.add_argument("--mails", type=int, default=3, help="new mails such a fetch finds (3)")
    parser.add_argument("--no-takeover", dest="takeover", action="store_false", help="kill no worker")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for the scratch databases"
    )
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in args.workers.split(",")]
    sizes = [int(n) for n in args.sizes.split(",")]

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows when piped
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    base = Path(tempfile.mkdtemp(prefix="postroom-coord-"))
    runs: list[Run] = []
    try:
        for size in sizes:
            with scratch_postgresql(args.pg_url, prefix="postroom_coord") as url:
                setup = bench_app(url)
                setup.init()
                started = time.monotonic()
                make_profiles(setup, size, args.interval)
                setup.dispose()
                print(f"{size} profiles made in {time.monotonic() - started:.1f} s")
                for workers in args.workers:
                    runs.append(measure(url, base, args, size, workers))
                    show(runs[-1], args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ratios(runs, args)
    decomposition(runs)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 1 if any(r.doubles for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
