"""Fetch lag and memory of one ``postroom run`` worker watching many IMAP mailboxes with IDLE.

    python -m bench.idle_lag [--profiles 500] [--rate 5] [--duration 60] [--interval 3600]
                             [--no-idle] [--threads 8] [--database postgresql|sqlite] [--pg-url URL]

Starts its own Dovecot (the test suite's helper, with process limits raised for hundreds of
connections) with one user per profile, makes that many routed IMAP profiles (IDLE on, polled
once an hour unless told otherwise), starts one worker and waits until it holds an IDLE
connection to every mailbox (its /health ``idle_connections``). Then it appends mails at a steady
rate to random mailboxes. Fetch lag = the message's ``created_at`` minus the moment its APPEND
returned. Prints p50/p95/p99/max against the targets p95 <= 1 s and p99 <= 2 s (exit status 1 if
missed), and the worker's resident memory (VmRSS) before and after, per IDLE mailbox.
``--no-idle`` runs the same with polling only, for the memory baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

from bench.scratch import DEFAULT_PG_URL
from bench.worker_lag import (
    fetched_once,
    fresh_database,
    mail,
    make_profiles,
    percentile,
    running_worker,
    scratch_dovecot,
    stored_at,
    wait_for,
)
from postroom.core.app import Postroom
from postroom.core.data.models import utcnow
from tests.servers.dovecot import Dovecot

#: Dovecot's defaults allow 100 processes per service; each IMAP session is a process (and its
#: STARTTLS is held by a login process), so hundreds of IDLE sessions need more.
LIMITS = """
default_process_limit = 3000
default_client_limit = 6000
default_vsz_limit = 0
service imap {
  process_limit = 3000
}
"""


class ManyConnectionsDovecot(Dovecot):
    """The test suite's Dovecot, configured for hundreds of simultaneous sessions."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        text = text.replace(
            "service imap-login {\n",
            "service imap-login {\n  service_count = 0\n  client_limit = 3000\n  process_min_avail = 2\n",
        )
        self.config_path.write_text(text + LIMITS)


def inotify_warning(profiles: int) -> str | None:
    """Dovecot learns of new mail from inotify, one instance per IDLE session, counted per uid: every
    user of this Dovecot is one uid, and past the kernel's limit Dovecot falls back to looking every
    30 s (``mailbox_idle_check_interval``), which is then what this bench would measure."""
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    if not path.exists():
        return None
    limit = int(path.read_text())
    if limit >= profiles + 64:
        return None
    return (
        f"fs.inotify.max_user_instances is {limit}: Dovecot's sessions past it notice new mail only "
        f"every 30 s. Raise it first (as root: sysctl -w fs.inotify.max_user_instances={profiles + 512})."
    )


def health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        document: dict[str, object] = json.loads(response.read())
        return document


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def deliver_steadily(
    dovecot: Dovecot, users: list[str], rate: float, duration: float, seed: int
) -> dict[str, datetime]:
    """A mail every 1/rate seconds to a random user; when each APPEND returned, by Message-ID."""
    chance = random.Random(seed)
    delivered: dict[str, datetime] = {}
    started = time.monotonic()
    number = 0
    while number < rate * duration:
        pause = started + number / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        with dovecot.client(chance.choice(users)) as client:
            client.append("INBOX", mail(number), flags=())
            delivered[f"lag-{number}@example.org"] = utcnow()
        number += 1
    return delivered


def run(args: argparse.Namespace, dovecot: Dovecot, directory: Path) -> int:
    with fresh_database(args.database, args.pg_url, directory) as url:
        app = Postroom(url)
        started = time.monotonic()
        users = make_profiles(app, dovecot, args.profiles, args.interval, idle=args.idle)
        print(f"{args.profiles} Dovecot users and profiles made in {time.monotonic() - started:.1f} s")
        try:
            with running_worker(url, args.threads, directory, stop_within=60) as (worker, admin_port, log_path):
                return measure(args, app, dovecot, users, worker, admin_port, log_path)
        finally:
            app.dispose()


def measure(
    args: argparse.Namespace,
    app: Postroom,
    dovecot: Dovecot,
    users: list[str],
    worker: subprocess.Popen[bytes],
    admin_port: int,
    log_path: Path,
) -> int:
    started = time.monotonic()
    wait_for("every profile's first fetch", 300, lambda: fetched_once(app))
    if args.idle:
        wait_for(
            "an IDLE connection to every mailbox",
            300,
            lambda: health(admin_port).get("idle_connections") == args.profiles,
        )
        print(f"{args.profiles} IDLE connections up {time.monotonic() - started:.1f} s after the start")
    time.sleep(5)  # the fetch after each connection settles
    rss_before = rss_kib(worker.pid)
    cycles_before = int(str(health(admin_port)["cycles"]))
    began = time.monotonic()
    delivered = deliver_steadily(dovecot, users, args.rate, args.duration, args.seed)
    elapsed = time.monotonic() - began
    ids = list(delivered)
    wait_for(
        "every delivered mail to be stored",
        2 * args.interval + 30,
        lambda: len(stored_at(app, ids)) == len(ids),
    )
    cycles = int(str(health(admin_port)["cycles"])) - cycles_before
    rss_after = rss_kib(worker.pid)
    if worker.poll() is not None:
        raise SystemExit(f"the worker exited early:\n{log_path.read_text()}")
    stored = stored_at(app, ids)
    lags = [(stored[m] - delivered[m]) / timedelta(seconds=1) for m in ids]
    p95, p99 = percentile(lags, 0.95), percentile(lags, 0.99)
    mode = "IDLE" if args.idle else "polling only"
    print(
        f"worker: {mode}, {args.threads} fetch threads, {args.database}, interval {args.interval} s; "
        f"{cycles} cycles while {len(lags)} mails went to {args.profiles} mailboxes over {elapsed:.0f} s"
    )
    print(
        f"fetch lag  p50 {percentile(lags, 0.5):.2f} s   p95 {p95:.2f} s   p99 {p99:.2f} s   "
        f"max {max(lags):.2f} s   mean {statistics.fmean(lags):.2f} s"
    )
    print(
        f"worker RSS {rss_before / 1024:.1f} MiB before the mails, {rss_after / 1024:.1f} MiB after "
        f"({rss_after / args.profiles:.0f} KiB per mailbox, all in); {threads_of(worker.pid)} threads"
    )
    if not args.idle:
        return 0
    met = p95 <= 1.0 and p99 <= 2.0
    print(f"target     p95 <= 1 s and p99 <= 2 s: {'met' if met else 'MISSED'}")
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=500, help="profiles, one Dovecot user each (500)")
    parser.add_argument("--rate", type=float, default=5.0, help="mails appended per second (5)")
    parser.add_argument("--duration", type=float, default=60.0, help="how long mail is appended, s (60)")
    parser.add_argument("--interval", type=int, default=3600, help="fetch interval of every profile, s (3600)")
    parser.add_argument("--no-idle", dest="idle", action="store_false", help="poll only (the baseline)")
    parser.add_argument("--threads", type=int, default=8, help="the worker's --threads (8)")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL server on which a fresh database is made and dropped afterwards",
    )
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args(argv)
    warning = inotify_warning(args.profiles) if args.idle else None
    if warning:
        print(f"warning: {warning}")

    with scratch_dovecot("dvi", ManyConnectionsDovecot) as (dovecot, home):
        return run(args, dovecot, home)


if __name__ == "__main__":
    sys.exit(main())
