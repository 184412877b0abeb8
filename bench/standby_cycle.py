"""The cost of the standby's empty cycle: transactions and CPU per cycle of a mailbox with nothing new (issue 18).

    python -m bench.standby_cycle [--profiles 500] [--interval 10] [--duration 20] [--threads 8] [--pg-url URL]
    python -m bench.standby_cycle --profiles 3000 --no-engine     # the standby alone

An idle ``postroom run`` re-executes itself as the standby (``core/worker/standby.py``), which runs
the empty cycles itself, on the bare driver, until there is work for the engine. So what a standby
cycle costs matters as much as the engine's (``bench.empty_cycle``, issue 16: at most 2
transactions and 1 ms of worker CPU per empty cycle). This makes the same setup as that bench (a
throw-away PostgreSQL database, ``--profiles`` maildir profiles on empty Maildirs, its helpers
imported), then runs one real ``Standby`` in this process: a ``Handover`` as the engine would write
it (worker id, the scratch URL, the protocols that wait in standby, the configuration generation,
the threads), a ``StandbyStore``, ``Standby.run()`` in a thread, ended with ``stop()``.

First, for ``--idle`` seconds, no profile is due (each held back a day): the standby's fixed cost
per second (its configuration and outbox checks, its claims). Then every profile is made due; once
each has had a cycle, for ``--duration`` seconds it counts:

- transactions: every transaction the store opens (counted in the store, all threads), and
  PostgreSQL's own ``pg_stat_database`` (xact_commit + xact_rollback) for the scratch database;
- CPU, ``time.process_time`` of this process (the bench's main thread sleeps meanwhile), and by
  thread (the cycle threads, the standby's loop, the rest);
- cycles, the standby's own counter (``Standby.cycles``), against those due (profiles / interval);
- the PostgreSQL backends' CPU, as ``bench.empty_cycle`` reads it, when the server is local.

Then, unless ``--no-engine``, it runs ``bench.empty_cycle`` with the same arguments in this process,
so the engine's figures for the same load sit beside the standby's, taken minutes apart.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import empty_cycle
from bench.empty_cycle import (
    backend_cpu,
    hold_back,
    load_average,
    make_profiles,
    server_transactions,
    wait_all_fetched,
)
from bench.scratch import DEFAULT_PG_URL, scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.worker.idle import CONNECTORS
from postroom.core.worker.standby_store import StandbyStore
from postroom.core.worker.standby_switch import Handover
from tests.support.standby import in_process_standby


class CountingStore(StandbyStore):
    """The standby's store, counting the transactions it opens (any thread)."""

    transactions = 0
    _counter_lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._counter_lock:
            self.transactions += 1
        with super()._transaction() as run:
            yield run


def thread_cpu() -> dict[str, float]:
    """CPU seconds each live thread of this process has used, by the thread's role in the standby."""
    roles: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            used = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, ProcessLookupError):
            continue
        if thread.name.startswith("postroom-standby"):
            role = "cycle threads"
        elif thread.name == "bench-standby":
            role = "standby loop"
        else:
            role = "other"
        roles[role] = roles.get(role, 0.0) + used
    return roles


def run(args: argparse.Namespace, directory: Path) -> int:
    with scratch_postgresql(args.pg_url, prefix="postroom_standby") as url:
        app = Postroom(url)
        app.init()
        make_profiles(app, directory, args.profiles, args.interval)
        hold_back(app, due=False)
        store = CountingStore.open(url, size=args.threads + CONNECTORS + 1)
        standby = in_process_standby(
            app, store, url, worker="bench:standby", threads=args.threads, lease=60, tick=0.5
        )
        outcome: list[Handover | None] = []
        thread = threading.Thread(target=lambda: outcome.append(standby.run()), name="bench-standby")
        thread.start()
        try:
            idle_load = load_average()
            time.sleep(2)  # past the start (the adoption, the first checks)
            cpu = time.process_time()
            time.sleep(args.idle)
            fixed = (time.process_time() - cpu) * 1000 / args.idle
            hold_back(app, due=True)
            wait_all_fetched(app, 120 + args.profiles / 50)
            time.sleep(args.interval)  # settle into the steady state
            time.sleep(1.1)  # let the server's statistics catch up before the first reading
            load_before = load_average()
            before = (store.transactions, standby.cycles, time.process_time(), server_transactions(app))
            threads_before, database_before = thread_cpu(), backend_cpu(app)
            started = time.monotonic()
            time.sleep(args.duration)
            after = (store.transactions, standby.cycles, time.process_time())
            threads_after, database_after = thread_cpu(), backend_cpu(app)
            elapsed = time.monotonic() - started
            load_after = load_average()
        finally:
            standby.stop()
            thread.join(120)
            store.close()
        time.sleep(1.1)
        server_after = server_transactions(app)
        app.dispose()
    if outcome and outcome[0] is not None:
        raise SystemExit(f"the standby woke the engine: {outcome[0].reason}")

    transactions = after[0] - before[0]
    cycles = after[1] - before[1]
    cpu = after[2] - before[2]
    due = args.profiles / args.interval
    print(
        f"STANDBY: {args.profiles} empty maildir profiles, interval {args.interval} s, one standby "
        f"({args.threads} threads), PostgreSQL, {elapsed:.1f} s measured"
    )
    print(f"cycles       {cycles} ({cycles / elapsed:.1f}/s; {due:.1f}/s due: {cycles / elapsed / due:.0%})")
    if cycles == 0:
        raise SystemExit("no cycles ran")
    print(
        f"transactions {transactions / cycles:.2f} per cycle ({transactions} by the store; "
        f"PostgreSQL counted {server_after - before[3]} incl. shutdown and the bench's readings)"
    )
    print(f"standby CPU  {cpu * 1000 / cycles:.2f} ms per cycle ({cpu / elapsed:.0%} of one core)")
    shares = {role: used - threads_before.get(role, 0.0) for role, used in threads_after.items()}
    print(
        "  by thread  "
        + ", ".join(
            f"{role} {used * 1000 / cycles:.2f}" for role, used in sorted(shares.items(), key=lambda s: -s[1])
        )
        + " ms per cycle"
    )
    print(
        f"  fixed      {fixed:.2f} ms per second with no profile due ({args.idle:.0f} s before the load; "
        f"load average {idle_load}); marginal {(cpu * 1000 - fixed * elapsed) / cycles:.2f} ms per cycle"
    )
    if database_before is not None and database_after is not None:
        print(
            f"database CPU {(database_after - database_before) * 1000 / cycles:.2f} ms per cycle (PostgreSQL backends)"
        )
    print(f"load average {load_before} before, {load_after} after")
    met = transactions / cycles <= 2 and cpu * 1000 / cycles <= 1
    print(
        f"target       <= 2 transactions and <= 1 ms CPU per cycle (the engine's): {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=500, help="maildir profiles, one empty Maildir each")
    parser.add_argument("--interval", type=int, default=10, help="fetch interval of every profile, s (10)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="how long the steady state is measured, s"
    )
    parser.add_argument(
        "--idle", type=float, default=10.0, help="how long the fixed cost is measured first, s"
    )
    parser.add_argument("--threads", type=int, default=8, help="the standby's threads (8)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server for the scratch database")
    parser.add_argument("--no-engine", action="store_true", help="skip bench.empty_cycle's run for reference")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="postroom-standby-"))
    try:
        status = run(args, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if args.no_engine:
        return status
    print("\nENGINE (bench.empty_cycle, same arguments), for reference:", flush=True)
    engine = [
        *("--profiles", str(args.profiles), "--interval", str(args.interval)),
        *("--duration", str(args.duration), "--idle", str(args.idle), "--threads", str(args.threads)),
        *("--pg-url", args.pg_url),
    ]
    empty_cycle.main(engine)
    return status


if __name__ == "__main__":
    sys.exit(main())
