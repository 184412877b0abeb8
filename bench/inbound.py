"""Inbound benchmark: a whole ``postroom fetch`` process against the stdlib and compat32 parsing floors.

    python -m bench.inbound [--mails N] [--rounds R] [--database-url URL] [--profile DIR] [--baseline DIR] [--skip-memory]

Starts its own Dovecot (the test suite's helper), loads N generated mails (``bench.inbound_mails``:
fixed seed, a quarter replies in a thread) into one mailbox, and then runs R interleaved rounds, each
measuring, in this order:

- the stdlib floor: one imapclient session over STARTTLS fetching every body (100 per ``UID FETCH``)
  and parsing each with ``email.policy.default``, every body and attachment decoded;
- the compat32 floor: the same with the stdlib's compat32 rules (``get_payload(decode=True)``), the
  rules postroom's own parser reads with;
- a real ``postroom fetch`` process (start-up included) into a fresh SQLite file, and one into a fresh
  PostgreSQL database, each with a profile over STARTTLS, a routing rule and the case-id resolver.

The best round of each counts (other work on a shared machine only ever adds time). Then one more,
untimed process per database under ``bench.statement_count`` gives statements and round trips per
mail and checks that every reply joined its thread's ticket, and (unless ``--skip-memory``) the peak
memory of a ``postroom fetch`` process for one 25 MB mail.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from imapclient import IMAPClient
from sqlalchemy import func, select

from bench.inbound_mails import big_mail, generate_mails
from bench.scratch import DEFAULT_PG_URL, scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, add_campaign, add_queue
from postroom.core.data.models import Message, Ticket
from postroom.core.data.profiles import ProfileFields, create_profile, set_resolvers
from postroom.core.data.rules import add_rule
from postroom.plugins.protocols.imap import quiet_imaplib
from tests.servers.certs import make_certificate
from tests.servers.dovecot import Dovecot

BATCH = 100


class Timing(NamedTuple):
    """Seconds of wall time, and of CPU time of the measuring client (user + system): for a
    ``postroom fetch`` process its own (wait4's rusage), not its database server's or Dovecot's."""

    wall: float
    cpu: float
DATABASES = ("SQLite", "PostgreSQL")


def load(dovecot: Dovecot, user: str, mails: list[bytes]) -> None:
    """IMAP MULTIAPPEND in chunks: one command (and one fsync) per chunk rather than per mail."""
    with dovecot.client(user) as client:
        for start in range(0, len(mails), 200):
            client.multiappend("INBOX", mails[start : start + 200])


# --- the floors ---------------------------------------------------------------------------------------


def raw_fetch(dovecot: Dovecot, user: str, handle: Callable[[bytes], None] | None = None) -> int:
    """One imapclient session over STARTTLS, as postroom's ``imap`` profile, fetching every body in batches."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = IMAPClient(dovecot.host, dovecot.imap_port, ssl=False, timeout=30)
    count = 0
    try:
        # As postroom's imap plugin does: imaplib would otherwise format the repr of every mail.
        quiet_imaplib(client)
        client.starttls(context)
        client.login(user, dovecot.passwords[user])
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for start in range(0, len(uids), BATCH):
            response = client.fetch(uids[start : start + BATCH], ["BODY.PEEK[]"])
            for data in response.values():
                count += 1
                if handle is not None:
                    handle(data[b"BODY[]"])
    finally:
        client.logout()
    return count


def stdlib_parse(raw: bytes) -> None:
    """The stdlib floor: policy.default parse, every body decoded, every attachment's content read."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if not part.is_multipart():
            part.get_content()


def compat32_parse(raw: bytes) -> None:
    """The compat32 floor: the stdlib's older rules, every part's payload decoded."""
    message = email.message_from_bytes(raw)
    for part in message.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)


def timed(work: Callable[[], object]) -> Timing:
    """Wall time and this process's CPU time of ``work``."""
    started, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - started, time.process_time() - cpu)


# --- postroom fetch processes -------------------------------------------------------------------------


def prepare_database(url: str, dovecot: Dovecot, user: str, profile: str = "bench") -> None:
    """Schema, a campaign and queue, an IMAP (STARTTLS) profile with a routing rule and the case-id resolver."""
    app = Postroom(url)
    try:
        app.init()
        with app.transaction() as session:
            campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, f"Support {profile}")
            queue = add_queue(session, campaign, "First line")
            created = create_profile(
                session,
                app.plugins,
                DEFAULT_CONTACT_CENTER_ID,
                profile,
                ProfileFields(
                    username=user,
                    password=dovecot.passwords[user],
                    fetch_protocol="imap",
                    incoming_host=dovecot.host,
                    incoming_port=dovecot.imap_port,
                    tls_verify=False,
                ),
            )
            add_rule(session, created, campaign, queue, to_pattern="support@*")
            set_resolvers(session, app.plugins, created, ["case-id"])
    finally:
        app.dispose()


#: Starts the command and reports its peak RSS. A small launcher process matters: a child forked from
#: this big benchmark process would count the pages it shared with us before exec in its high-water mark.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_cli_fetch(
    url: str,
    profile: str,
    wrapper: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[Timing, int]:
    """A real ``postroom fetch`` process: its wall and CPU time and its peak RSS in bytes (wait4's rusage).

    ``cwd``: the directory it runs in; ``python -m`` imports ``postroom`` from there first, so a
    checkout of other code given here is what runs (``--baseline``).
    """
    environment = {**os.environ, **(env or {}), "POSTROOM_DATABASE_URL": url}
    command = [sys.executable, *(wrapper or ["-m", "postroom"]), "fetch", "--profile", profile]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], env=environment, capture_output=True, text=True, cwd=cwd
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"postroom fetch exited {done.returncode}: {done.stderr}")
    peak, cpu = done.stdout.split()[-2:]
    return Timing(elapsed, float(cpu)), int(peak) * 1024


@contextmanager
def fresh_database(label: str, server_url: str, directory: Path) -> Iterator[str]:
    if label == "PostgreSQL":
        with scratch_postgresql(server_url) as url:
            yield url
    else:
        yield f"sqlite:///{directory / f'bench-{uuid.uuid4().hex}.sqlite'}"


def process_fetch(
    label: str, args: argparse.Namespace, dovecot: Dovecot, user: str, directory: Path, cwd: str | None = None
) -> Timing:
    """Wall time of one ``postroom fetch`` process into a fresh database (made before the clock starts)."""
    with fresh_database(label, args.database_url, directory) as url:
        prepare_database(url, dovecot, user)
        elapsed, _ = run_cli_fetch(url, "bench", cwd=cwd)
        check_stored(url, args.mails)
    return elapsed


def check_stored(url: str, mails: int) -> tuple[int, int]:
    """Every mail stored and ticketed; returns (messages, tickets)."""
    app = Postroom(url)
    try:
        with app.transaction() as session:
            messages = session.scalar(select(func.count()).select_from(Message).where(Message.ticket_id.is_not(None)))
            tickets = session.scalar(select(func.count()).select_from(Ticket))
    finally:
        app.dispose()
    if messages != mails:
        raise SystemExit(f"postroom fetch ticketed {messages} of {mails} mails")
    return messages, tickets or 0


def counted_fetch(label: str, args: argparse.Namespace, dovecot: Dovecot, user: str, directory: Path) -> dict[str, object]:
    """One untimed process under ``bench.statement_count``: its counts, and the tickets it made."""
    counts_file = directory / f"counts-{uuid.uuid4().hex}.json"
    with fresh_database(label, args.database_url, directory) as url:
        prepare_database(url, dovecot, user)
        run_cli_fetch(url, "bench", ["-m", "bench.statement_count"], {"POSTROOM_BENCH_COUNTS": str(counts_file)})
        _, tickets = check_stored(url, args.mails)
    counts: dict[str, object] = json.loads(counts_file.read_text())
    counts["tickets"] = tickets
    return counts


def profiled_fetch(label: str, args: argparse.Namespace, dovecot: Dovecot, user: str, directory: Path) -> Path:
    """One untimed process under cProfile; the stats file is written to ``--profile`` DIR."""
    target = Path(args.profile) / f"fetch-{label.lower()}.prof"
    target.parent.mkdir(parents=True, exist_ok=True)
    with fresh_database(label, args.database_url, directory) as url:
        prepare_database(url, dovecot, user)
        run_cli_fetch(url, "bench", ["-m", "cProfile", "-o", str(target), "-m", "postroom"])
    return target


# --- reporting ----------------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mails", type=int, default=5000, help="how many mails to load (default 5000)")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_URL,
        help="a PostgreSQL server URL; fresh databases are created on it and dropped afterwards",
    )
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each counts")
    parser.add_argument("--big-mail-mb", type=float, default=25.0, help="size of the peak-memory mail")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory measurement")
    parser.add_argument("--profile", metavar="DIR", help="write a cProfile of each fetch process to DIR")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a copy of other code (git archive COMMIT | tar -x -C DIR) whose 'postroom fetch' runs in each"
        " round too, interleaved with this one's, on the same mailbox (its schema must be this one's)",
    )
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="dvb", dir="/tmp"))
    base.chmod(0o755)
    (base / "cert").mkdir(mode=0o755)
    dovecot = Dovecot(base, make_certificate(base / "cert"))
    dovecot.start()
    sqlite_dir = Path(tempfile.mkdtemp(prefix="prb"))
    try:
        run(dovecot, args, sqlite_dir)
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(sqlite_dir, ignore_errors=True)


def run(dovecot: Dovecot, args: argparse.Namespace, directory: Path) -> None:
    mails = generate_mails(args.mails, args.seed)
    user, _ = dovecot.new_user("bench")
    started = time.perf_counter()
    load(dovecot, user, mails)
    total = sum(len(m) for m in mails)
    print(
        f"loaded {len(mails)} mails ({total / 1e6:.1f} MB, {total / len(mails) / 1024:.1f} KiB average, "
        f"seed {args.seed}) into Dovecot in {time.perf_counter() - started:.1f} s; Python {sys.version.split()[0]}"
    )
    count = raw_fetch(dovecot, user)  # warms Dovecot's caches, so the first floor does not pay for them
    if count != len(mails):
        raise SystemExit(f"Dovecot holds {count} of {len(mails)} mails")

    fetches = [(f"fetch {d}", d, None) for d in DATABASES]
    if args.baseline:
        fetches += [(f"base {d}", d, str(Path(args.baseline).resolve())) for d in DATABASES]
    names = ["stdlib floor", "compat32 floor", *(name for name, _, _ in fetches)]
    times: dict[str, list[Timing]] = {name: [] for name in names}
    print(f"\n{'round':5} {'load':15} " + " ".join(f"{n:>17}" for n in names) + "   ms per mail: wall (client CPU)")
    for number in range(1, args.rounds + 1):
        load_then = load_average()
        times["stdlib floor"].append(timed(lambda: raw_fetch(dovecot, user, stdlib_parse)))
        times["compat32 floor"].append(timed(lambda: raw_fetch(dovecot, user, compat32_parse)))
        # The baseline's processes and this code's take turns going first, round by round.
        for name, label, cwd in fetches if number % 2 else fetches[::-1]:
            times[name].append(process_fetch(label, args, dovecot, user, directory, cwd))
        print(f"{number:5} {load_then:15} {_row([times[n][-1] for n in names], count)}", flush=True)
    best = {name: Timing(min(t.wall for t in values), min(t.cpu for t in values)) for name, values in times.items()}
    print(f"{'best':5} {load_average():15} {_row([best[n] for n in names], count)}")

    counts = {label: counted_fetch(label, args, dovecot, user, directory) for label in DATABASES}
    print()
    for name, label, _cwd in fetches:
        mine = best[name]
        stdlib, compat32 = best["stdlib floor"], best["compat32 floor"]
        who = "postroom fetch process" if name.startswith("fetch") else "baseline's fetch process"
        print(
            f"{who}, {label:10}: {mine.wall / stdlib.wall:.2f} x the stdlib floor"
            f"{' (target <= 1.5)' if label == 'PostgreSQL' else ''}, "
            f"{mine.wall / compat32.wall:.2f} x the compat32 floor"
            f"{' (aim <= 2.5)' if label == 'PostgreSQL' else ''}; "
            f"client CPU {mine.cpu / stdlib.cpu:.2f} x and {mine.cpu / compat32.cpu:.2f} x"
        )
    print()
    for label in DATABASES:
        found = counts[label]
        kinds = found["by_kind"]
        assert isinstance(kinds, dict)
        print(
            f"{label:10}: {_per(found['statements'], count)} statements and {_per(found['round_trips'], count)}"
            f" round trips per mail, {found.get('commits', 0)} commits, {found['tickets']} tickets; "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        )
    if args.profile:
        for label in DATABASES:
            print(f"cProfile of the {label} process written to {profiled_fetch(label, args, dovecot, user, directory)}")
    if not args.skip_memory:
        print()
        for line in peak_memory(dovecot, args, directory):
            print(line)


def _row(timings: list[Timing], count: int) -> str:
    return " ".join(f"{f'{t.wall / count * 1000:.3f} ({t.cpu / count * 1000:.3f})':>17}" for t in timings)


def _per(value: object, count: int) -> str:
    assert isinstance(value, int)
    return f"{value / count:.2f}"


def peak_memory(dovecot: Dovecot, args: argparse.Namespace, directory: Path) -> list[str]:
    """Peak RSS of a ``postroom fetch`` process for one big mail, above the same process with nothing to do.

    The baseline is the high-water mark of ``postroom fetch`` on an empty mailbox (interpreter,
    libraries, plugins, database driver); the growth above it is what the mail costs.
    """
    size = int(args.big_mail_mb * 1024 * 1024)
    raw = big_mail(size)
    empty, _ = dovecot.new_user("empty")
    dovecot.count(empty)
    big, _ = dovecot.new_user("big")
    dovecot.deliver(big, raw)
    lines = [
        f"peak memory of a 'postroom fetch' process for a mailbox holding one {len(raw) / 2**20:.1f} MiB"
        " mail; growth = its peak RSS (ru_maxrss from wait4)",
        "minus the peak of the same command on an empty mailbox:",
    ]
    for label in DATABASES:
        with fresh_database(label, args.database_url, directory) as url:
            prepare_database(url, dovecot, empty, "empty")
            prepare_database(url, dovecot, big, "big")
            _, baseline = run_cli_fetch(url, "empty")
            _, peak = run_cli_fetch(url, "big")
        growth = peak - baseline
        lines.append(
            f"  {label:10} baseline {baseline / 2**20:6.1f} MiB, peak {peak / 2**20:6.1f} MiB, "
            f"growth {growth / 2**20:6.1f} MiB = {growth / len(raw):.2f} x the mail (target <= 4)"
        )
    return lines


if __name__ == "__main__":
    main()
