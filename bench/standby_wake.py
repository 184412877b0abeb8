"""Fetch lag of a mail that finds the worker standing by: the standby notices it and the engine starts.

    python -m bench.standby_wake [--profiles 10] [--mails 10] [--standby-after 3] [--database postgresql|sqlite]
                                 [--no-idle] [--pg-url URL]

Issue 18's standby (``core/worker/standby_switch.py``) saves memory while nothing happens, at a
price paid by the next mail: the standby must re-execute the process as the engine (interpreter,
SQLAlchemy, the models, the plugins) before that mail is stored. This bench measures that price.
It starts its own Dovecot with ``--profiles`` routed IMAP profiles (IDLE on unless ``--no-idle``,
then polled every 2 s), one ``postroom run`` with ``--standby-after``, and then, ``--mails`` times:
waits until the worker's process runs the standby (its command line), appends one mail to a random
mailbox and waits until it is stored. Lag = the message's ``created_at`` minus the moment its
APPEND returned, as in ``bench.idle_lag``, whose figures (an engine already running, p50 0.62 s)
are the comparison.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench.idle_lag import ManyConnectionsDovecot
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


def standing_by(pid: int) -> bool:
    return b"postroom.core.worker.standby" in Path(f"/proc/{pid}/cmdline").read_bytes()


def run(args: argparse.Namespace, dovecot: Dovecot, directory: Path) -> int:
    chance = random.Random(args.seed)
    with fresh_database(args.database, args.pg_url, directory) as url:
        app = Postroom(url)
        interval = 3600 if args.idle else 2
        users = make_profiles(app, dovecot, args.profiles, interval, idle=args.idle)
        extra = ["--standby-after", str(args.standby_after)]
        try:
            with running_worker(url, 8, directory, stop_within=60, admin=False, extra=extra) as (worker, _, log):
                wait_for("every profile's first fetch", 300, lambda: fetched_once(app))
                lags = []
                for number in range(args.mails):
                    wait_for("the standby", 600, lambda: standing_by(worker.pid))
                    time.sleep(args.settle)  # its IDLE connections up, its first look over
                    with dovecot.client(chance.choice(users)) as client:
                        client.append("INBOX", mail(number), flags=())
                        appended = utcnow()
                    message_id = f"lag-{number}@example.org"
                    wait_for("the mail stored", 120, lambda m=message_id: m in stored_at(app, [m]))  # type: ignore[misc]
                    lag = (stored_at(app, [message_id])[message_id] - appended) / timedelta(seconds=1)
                    lags.append(lag)
                    print(f"mail {number}: stored {lag:.2f} s after its APPEND", flush=True)
                if worker.poll() is not None:
                    raise SystemExit(f"the worker exited early:\n{log.read_text()}")
        finally:
            app.dispose()
    mode = "IDLE" if args.idle else "polled every 2 s"
    print(
        f"{args.database}, {args.profiles} profiles ({mode}), from the standby: lag p50 {percentile(lags, 0.5):.2f} s   "
        f"max {max(lags):.2f} s   mean {statistics.fmean(lags):.2f} s over {len(lags)} mails"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=10, help="profiles, one Dovecot user each (10)")
    parser.add_argument("--mails", type=int, default=10, help="mails, each to a worker standing by (10)")
    parser.add_argument("--standby-after", type=int, default=3, help="the worker's --standby-after (3)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds in standby before each mail (3)")
    parser.add_argument("--no-idle", dest="idle", action="store_false", help="polled every 2 s, IDLE off")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for the scratch database")
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args(argv)
    with scratch_dovecot("dvw", ManyConnectionsDovecot) as (dovecot, home):
        return run(args, dovecot, home)


if __name__ == "__main__":
    sys.exit(main())
