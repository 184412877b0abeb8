"""Memory of an idle ``postroom run`` worker: by profile count, by database, and per IDLE connection.

    python -m bench.idle [--profiles 1,100,1000] [--database both|sqlite|postgresql]
                         [--settle 40] [--idle-profiles 100] [--maildir] [--pg-url URL]
                         [--standby-after 20]

Starts its own Dovecot (the test suite's helper, limits raised as in bench.idle_lag). For each
database and each profile count N it makes a fresh database with N routed IMAP profiles on N
Dovecot users with empty mailboxes (STARTTLS, polled once an hour unless ``--fetch-interval``, IDLE off),
starts one real ``postroom run`` process (8 fetch threads, no admin endpoint), waits until every
profile has been fetched once, then ``--settle`` seconds more (past the worker's own clean-up at
30 s), and reads the worker's VmRSS, VmHWM (its peak) and private memory from /proc. It prints one
line per run and the growth per 100 profiles, and checks issue 18's target: one profile, at most
50 MiB VmRSS.

An idle worker stands by (``core/worker/standby_switch.py``): after ``--standby-after`` seconds
with nothing done (20 here, 300 by default in ``postroom run``) its process becomes the standby,
which waits without the database stack. The bench waits for that (the process's command line
names the standby) before the settle time, so the figures are the standby's; ``--standby-after 0``
keeps the engine resident and measures it instead, as before the standby existed.

``--maildir`` makes maildir profiles on empty local Maildirs instead: no TLS, no stored password,
so the difference to the IMAP figures is what a mail server's login costs the worker (the password
cipher, the TLS context with its certificate authorities).

Then, unless ``--idle-profiles 0``, on PostgreSQL: ``--idle-profiles`` profiles with IDLE on and
the same number polled only, and prints the difference per IDLE connection: in the standby (its
log says when each connection waits), or with ``--standby-after 0`` in the engine, whose admin
endpoint's /health gives ``idle_connections``.
"""

from __future__ import annotations

import argparse
import mailbox
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from bench.idle_lag import ManyConnectionsDovecot, health
from bench.scratch import DEFAULT_PG_URL
from bench.worker_lag import (
    fetched_once,
    fresh_database,
    make_profiles,
    running_worker,
    scratch_dovecot,
    wait_for,
)
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.profiles import ProfileFields, create_profile
from tests.servers.dovecot import Dovecot

TARGET_MIB = 50.0


@dataclass
class Memory:
    """One worker's memory, KiB, from /proc/PID/status and smaps_rollup."""

    rss: int
    peak: int
    private: int
    threads: int

    @classmethod
    def of(cls, pid: int) -> Memory:
        status = _fields(Path(f"/proc/{pid}/status"))
        rollup = _fields(Path(f"/proc/{pid}/smaps_rollup"))
        private = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
        return cls(status["VmRSS"], status["VmHWM"], private, status["Threads"])


def _fields(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            values[name] = int(words[0])
    return values


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


@contextmanager
def worker_with_profiles(
    kind: str, args: argparse.Namespace, dovecot: Dovecot, directory: Path, count: int, *, idle: bool, admin: bool
) -> Iterator[tuple[int, int]]:
    """A settled worker on a fresh database with ``count`` profiles: its pid and admin port."""
    with fresh_database(kind, args.pg_url, directory) as url:
        app = Postroom(url)
        try:
            if args.maildir:
                make_maildir_profiles(app, directory / "maildirs", count)
            else:
                make_profiles(app, dovecot, count, args.fetch_interval, idle=idle)
            extra = ["--standby-after", str(args.standby_after)]
            with running_worker(url, 8, directory, stop_within=60, admin=admin, extra=extra) as (
                worker,
                port,
                log_path,
            ):
                wait_for("every profile's first fetch", 600, lambda: fetched_once(app))
                if args.standby_after:
                    wait_for("the standby", 600, lambda: standing_by(worker.pid))
                if idle and admin:
                    wait_for(
                        "an IDLE connection to every mailbox",
                        600,
                        lambda: health(port).get("idle_connections") == count,
                    )
                elif idle:
                    wait_for("an IDLE connection to every mailbox", 600, lambda: waiting_in_standby(log_path) >= count)
                time.sleep(args.settle)
                if worker.poll() is not None:
                    raise SystemExit(f"the worker exited early:\n{log_path.read_text()}")
                yield worker.pid, port
        finally:
            app.dispose()
        if kind == "sqlite":
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)


def standing_by(pid: int) -> bool:
    """Whether the worker's process runs the standby's image now (its command line)."""
    return b"postroom.core.worker.standby" in Path(f"/proc/{pid}/cmdline").read_bytes()


def waiting_in_standby(log_path: Path) -> int:
    """IDLE connections the standby opened, by its log (the last standby's part of it)."""
    log = log_path.read_text(errors="replace")
    start = log.rfind("standing by: ")
    return log[start:].count("waiting for new mail (IDLE)") if start >= 0 else 0


def make_maildir_profiles(app: Postroom, directory: Path, count: int) -> None:
    """``count`` maildir profiles, each on an empty Maildir of its own, polled once an hour."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    with app.transaction() as session:
        for number in range(count):
            folder = directory / f"md{number:05}"
            mailbox.Maildir(folder, create=True)
            create_profile(
                session,
                app.plugins,
                DEFAULT_CONTACT_CENTER_ID,
                f"idle{number:05}",
                ProfileFields(fetch_protocol="maildir", incoming_folder=str(folder), fetch_interval=3600),
            )


def by_profiles(args: argparse.Namespace, dovecot: Dovecot, directory: Path, kind: str) -> float:
    """One line per profile count; returns the RSS of the one-profile worker, MiB (or 0)."""
    measured: dict[int, Memory] = {}
    for count in args.profiles:
        with worker_with_profiles(kind, args, dovecot, directory, count, idle=False, admin=False) as (pid, _):
            memory = Memory.of(pid)
        measured[count] = memory
        print(
            f"{kind:10} {count:5} {'maildir' if args.maildir else 'IMAP'} profiles, "
            f"{'standby' if args.standby_after else 'engine'}: VmRSS {mib(memory.rss):>6} MiB   peak {mib(memory.peak):>6} MiB   "
            f"private {mib(memory.private):>6} MiB   {memory.threads} threads",
            flush=True,
        )
    counts = sorted(measured)
    for low, high in pairwise(counts):
        growth = (measured[high].rss - measured[low].rss) / (high - low) * 100
        print(f"{kind:10} growth from {low} to {high} profiles: {mib(growth)} MiB VmRSS per 100 profiles")
    return measured[1].rss / 1024 if 1 in measured else 0.0


def per_idle_connection(args: argparse.Namespace, dovecot: Dovecot, directory: Path) -> None:
    count = args.idle_profiles
    rss: dict[bool, int] = {}
    admin = not args.standby_after  # the admin endpoint keeps the engine resident
    for idle in (False, True):
        with worker_with_profiles(
            "postgresql", args, dovecot, directory, count, idle=idle, admin=admin
        ) as (pid, _port):
            rss[idle] = Memory.of(pid).rss
    cost = (rss[True] - rss[False]) / count
    form = "engine with an admin endpoint" if admin else "standby"
    print(
        f"postgresql {count} profiles, {form}: VmRSS {mib(rss[False])} MiB polled, "
        f"{mib(rss[True])} MiB holding {count} IDLE connections: {cost:.0f} KiB per IDLE connection"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--profiles",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 100, 1000],
        help="profile counts, comma-separated (1,100,1000)",
    )
    parser.add_argument("--database", choices=["both", "sqlite", "postgresql"], default="both")
    parser.add_argument("--settle", type=float, default=40.0, help="seconds after the first fetches (40)")
    parser.add_argument(
        "--idle-profiles", type=int, default=100, help="IDLE connections for the per-connection cost (100; 0: skip)"
    )
    parser.add_argument("--maildir", action="store_true", help="maildir profiles on empty Maildirs, not IMAP")
    parser.add_argument(
        "--fetch-interval",
        type=int,
        default=3600,
        help="the profiles' fetch interval (3600: nothing polled while measured; 10: the standby polls and logs in)",
    )
    parser.add_argument(
        "--standby-after",
        type=int,
        default=20,
        help="the worker's --standby-after; the figures are the standby's (20; 0: the engine stays resident)",
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL server on which fresh databases are made and dropped afterwards",
    )
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    one_profile: dict[str, float] = {}
    with scratch_dovecot("dvm", ManyConnectionsDovecot) as (dovecot, home):
        for kind in kinds:
            one_profile[kind] = by_profiles(args, dovecot, home, kind)
        if args.idle_profiles and not args.maildir:
            per_idle_connection(args, dovecot, home)
    met = True
    for kind, value in one_profile.items():
        if value:
            verdict = "met" if value <= TARGET_MIB else "MISSED"
            met = met and value <= TARGET_MIB
            print(f"target     one profile on {kind}: VmRSS {value:.1f} MiB <= {TARGET_MIB:.0f} MiB: {verdict}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
