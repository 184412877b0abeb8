"""Fetch lag of one ``postroom run`` worker: how long a mail waits in its mailbox before it is stored.

    python -m bench.worker_lag [--profiles 200] [--interval 10] [--duration 60] [--threads 8]
                               [--database postgresql|sqlite] [--pg-url URL]

Starts its own Dovecot (the test suite's helper) with one user per profile, makes that many
routed IMAP profiles with the given fetch interval, starts one worker, waits until every
profile has been fetched once, then for ``--duration`` seconds delivers mails at random times
to random mailboxes. Fetch lag = the message's ``created_at`` minus the moment its APPEND
returned. Prints p50/p95/max against the target p95 <= interval + 1 s (exit status 1 if missed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import func, select

from bench.scratch import DEFAULT_PG_URL, scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, add_campaign, add_queue
from postroom.core.data.idle_switch import set_idle
from postroom.core.data.models import MediaProfile, Message, utcnow
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.data.rules import add_rule
from tests.servers.certs import make_certificate
from tests.servers.dovecot import Dovecot, free_ports


@contextmanager
def fresh_database(kind: str, server_url: str, directory: Path) -> Iterator[str]:
    """A new, initialised database of the given kind, removed afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'lag.sqlite'}"
        Postroom(url).init()
        yield url
        return
    with scratch_postgresql(server_url, prefix="postroom_lag") as url:
        Postroom(url).init()
        yield url


def make_profiles(app: Postroom, dovecot: Dovecot, count: int, interval: int, idle: bool = False) -> list[str]:
    """``count`` Dovecot users, each with a routed IMAP profile; returns the users, in profile order.

    Polled only unless ``idle`` (bench.idle_lag): this bench measures polling.
    """
    users = [dovecot.new_user("lag")[0] for _ in range(count)]
    with app.transaction() as session:
        campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "Support")
        queue = add_queue(session, campaign, "First line")
        for number, user in enumerate(users):
            profile = create_profile(
                session,
                app.plugins,
                DEFAULT_CONTACT_CENTER_ID,
                f"lag{number:03}",
                ProfileFields(
                    username=user,
                    password=dovecot.passwords[user],
                    fetch_protocol="imap",
                    incoming_host=dovecot.host,
                    incoming_port=dovecot.imap_port,
                    fetch_interval=interval,
                    delete_on_fetch=number % 2 == 0,
                    tls_verify=False,
                ),
            )
            set_idle(session, profile, idle)
            add_rule(session, profile, campaign, queue)
    return users


def mail(number: int) -> bytes:
    lines = [
        f"From: Customer {number} <customer{number}@example.org>",
        "To: support@example.test",
        f"Subject: Lag probe {number}",
        f"Date: {format_datetime(datetime.now().astimezone())}",
        f"Message-ID: <lag-{number}@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(lines) + f"\r\n\r\nProbe {number}.\r\n").encode()


def deliver(dovecot: Dovecot, users: list[str], duration: float, seed: int) -> dict[str, datetime]:
    """Mails at random times (exponential gaps, about 5 a second) to random users.

    Returns when each APPEND returned, by Message-ID.
    """
    chance = random.Random(seed)
    delivered: dict[str, datetime] = {}
    deadline = time.monotonic() + duration
    number = 0
    while time.monotonic() < deadline:
        time.sleep(chance.expovariate(5.0))
        with dovecot.client(chance.choice(users)) as client:
            client.append("INBOX", mail(number), flags=())
            delivered[f"lag-{number}@example.org"] = utcnow()
        number += 1
    return delivered


def stored_at(app: Postroom, message_ids: list[str]) -> dict[str, datetime]:
    with app.sessions() as session:
        rows = session.execute(
            select(Message.message_id, Message.created_at).where(Message.message_id.in_(message_ids))
        )
        return {message_id: created for message_id, created in rows if message_id}


def wait_for(what: str, timeout: float, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(args: argparse.Namespace, dovecot: Dovecot, directory: Path) -> int:
    with fresh_database(args.database, args.pg_url, directory) as url:
        app = Postroom(url)
        started = time.monotonic()
        users = make_profiles(app, dovecot, args.profiles, args.interval)
        print(f"{args.profiles} Dovecot users and profiles made in {time.monotonic() - started:.1f} s")
        try:
            with running_worker(url, args.threads, directory, stop_within=30) as (worker, admin_port, log_path):
                return measure(args, app, dovecot, users, worker, admin_port, log_path)
        finally:
            app.dispose()


def fetched_once(app: Postroom) -> bool:
    with app.sessions() as session:
        waiting = session.scalar(select(func.count()).where(MediaProfile.last_fetch_at.is_(None)))
    return waiting == 0


def cycles_so_far(port: int) -> int:
    """How many fetch cycles the worker has run, from its /health document."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        return int(json.loads(response.read())["cycles"])


def measure(
    args: argparse.Namespace,
    app: Postroom,
    dovecot: Dovecot,
    users: list[str],
    worker: subprocess.Popen[bytes],
    admin_port: int,
    log_path: Path,
) -> int:
    wait_for("every profile's first fetch", 120, lambda: fetched_once(app))
    cycles_before = cycles_so_far(admin_port)
    started = time.monotonic()
    delivered = deliver(dovecot, users, args.duration, args.seed)
    elapsed = time.monotonic() - started
    cycles = cycles_so_far(admin_port) - cycles_before
    ids = list(delivered)
    wait_for(
        "every delivered mail to be stored",
        2 * args.interval + 30,
        lambda: len(stored_at(app, ids)) == len(ids),
    )
    stored = stored_at(app, ids)
    lags = [(stored[m] - delivered[m]) / timedelta(seconds=1) for m in ids]
    if worker.poll() is not None:
        raise SystemExit(f"the worker exited early:\n{log_path.read_text()}")

    target = args.interval + 1.0
    p95 = percentile(lags, 0.95)
    print(
        f"worker: {args.threads} fetch threads, {args.database}; {cycles} cycles in {elapsed:.0f} s "
        f"({cycles / elapsed:.1f}/s; {args.profiles / args.interval:.1f}/s due)"
    )
    print(f"{len(lags)} mails delivered at random to {args.profiles} profiles over {elapsed:.0f} s")
    print(
        f"fetch lag  p50 {percentile(lags, 0.5):.2f} s   p95 {p95:.2f} s   max {max(lags):.2f} s   "
        f"mean {statistics.fmean(lags):.2f} s"
    )
    verdict = "met" if p95 <= target else "MISSED"
    print(f"target     p95 <= interval + 1 s = {target:.0f} s: {verdict}")
    return 0 if p95 <= target else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=200, help="profiles, one Dovecot user each (200)")
    parser.add_argument("--interval", type=int, default=10, help="fetch interval of every profile, s (10)")
    parser.add_argument("--duration", type=float, default=60.0, help="how long mail is delivered, s (60)")
    parser.add_argument("--threads", type=int, default=8, help="the worker's --threads (8)")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL server on which a fresh database is made and dropped afterwards",
    )
    parser.add_argument("--seed", type=int, default=20241129)
    args = parser.parse_args(argv)

    with scratch_dovecot("dvl", Dovecot) as (dovecot, home):
        return run(args, dovecot, home)


@contextmanager
def running_worker(
    url: str, threads: int, directory: Path, stop_within: float, admin: bool = True, extra: Sequence[str] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A `postroom run` process on ``url`` with an admin port, its log in ``directory``; SIGTERM at the end.

    Without ``admin`` (bench.idle: the metrics library is imported only for the admin endpoint)
    the port returned is 0 and nothing listens.
    """
    (admin_port,) = free_ports(1) if admin else (0,)
    env = {**os.environ, "POSTROOM_DATABASE_URL": url}
    command = [sys.executable, "-m", "postroom", "run", "--threads", str(threads)]
    if admin:
        command += ["--admin-listen", f"127.0.0.1:{admin_port}"]
    command += extra
    log_path = directory / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield worker, admin_port, log_path
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(stop_within)
            except subprocess.TimeoutExpired:
                worker.kill()


@contextmanager
def scratch_dovecot(prefix: str, kind: type[Dovecot]) -> Iterator[tuple[Dovecot, Path]]:
    """A Dovecot of ``kind`` in a scratch directory, and the POSTROOM_HOME the worker shares with us."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    (base / "cert").mkdir(mode=0o755)
    home = base / "home"
    home.mkdir()
    # The worker process must decrypt the passwords this process stored: one data directory for both.
    os.environ["POSTROOM_HOME"] = str(home)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    dovecot = kind(base, make_certificate(base / "cert"))
    dovecot.start()
    try:
        yield dovecot, home
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
