"""Inbound benchmark: how close ``postroom fetch`` comes to the raw IMAP fetch and the stdlib parsing floor.

    python -m bench.inbound [--mails N] [--database-url URL] [--profile FILE]

Starts its own Dovecot (the test suite's helper), loads N generated mails (fixed seed) into one
mailbox, and measures in the same run: (a) one imapclient session fetching every body in batches;
(b) (a) plus a stdlib ``policy.default`` parse walking every body and attachment; (c) postroom's
fetch cycle into a fresh PostgreSQL database and a fresh SQLite file, and once as a real
``postroom fetch`` process. Then the peak memory of a ``postroom fetch`` process for one 25 MB mail.
"""

from __future__ import annotations

import argparse
import cProfile
import email
import email.policy
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.scratch import DEFAULT_PG_URL, scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.inbound.fetch import Fetcher
from postroom.plugins.protocols.imap import quiet_imaplib
from tests.servers.certs import make_certificate
from tests.servers.dovecot import Dovecot

BATCH = 100
SUBJECTS = [
    "Grüße aus Köln \u2013 Rechnung Nr. {n}",
    "Ваш заказ {n} отправлен",
    "請確認訂單 {n}",
    "Problème de livraison n° {n} ✓",
    "Question about order {n}",
    "Re: Αίτημα υποστήριξης {n}",
]
WORDS = [
    *["the", "order", "arrived", "damaged", "please", "send", "a", "replacement", "or", "refund"],
    *["thank", "you", "kind", "regards"],
]


# --- mail generation --------------------------------------------------------------------------------


def generate_mails(count: int, seed: int) -> list[bytes]:
    """Plain, multipart/alternative, one in ten with a 50-200 KB attachment; non-ASCII subjects."""
    rng = random.Random(seed)
    mails = []
    for n in range(count):
        message = EmailMessage()
        message["From"] = f"Kundin {n} Müller <customer{n % 300}@example.org>"
        message["To"] = "Support <support@example.test>"
        message["Subject"] = rng.choice(SUBJECTS).format(n=n)
        message["Date"] = email.utils.formatdate(1_700_000_000 + n * 60, localtime=False)
        message["Message-ID"] = f"<bench-{seed}-{n}@example.org>"
        text_body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 400))) + "\n"
        message.set_content(text_body)
        kind = rng.random()
        if kind >= 0.5:
            message.add_alternative(f"<html><body><p>{text_body}</p></body></html>\n", subtype="html")
        if kind >= 0.9:
            size = rng.randint(50_000, 200_000)
            message.add_attachment(
                rng.randbytes(size), maintype="application", subtype="pdf", filename=f"scan-{n}.pdf"
            )
        mails.append(message.as_bytes(policy=email.policy.SMTP))
    return mails


def big_mail(size: int) -> bytes:
    """One mail of about ``size`` bytes: a short text and one base64 attachment."""
    message = EmailMessage()
    message["From"] = "customer@example.org"
    message["To"] = "support@example.test"
    message["Subject"] = "The big scan"
    message["Message-ID"] = f"<big-{uuid.uuid4().hex}@example.org>"
    message.set_content("See the attachment.\n")
    # base64 grows by 4/3 plus a CRLF every 76 characters.
    raw_size = int(size * 3 / 4 * 76 / 78)
    message.add_attachment(os.urandom(raw_size), maintype="application", subtype="octet-stream", filename="x")
    return message.as_bytes(policy=email.policy.SMTP)


def load(dovecot: Dovecot, user: str, mails: list[bytes]) -> None:
    """IMAP MULTIAPPEND in chunks: one command (and one fsync) per chunk rather than per mail."""
    with dovecot.client(user) as client:
        for start in range(0, len(mails), 200):
            client.multiappend("INBOX", mails[start : start + 200])


# --- the three measurements -------------------------------------------------------------------------


def raw_fetch(dovecot: Dovecot, user: str, handle: Callable[[bytes], None] | None = None) -> int:
    """(a) One imapclient session fetching every body in batches; with ``handle``, (b)."""
    count = 0
    with dovecot.client(user) as client:
        # As postroom's imap plugin does: imaplib would otherwise format the repr of every mail.
        quiet_imaplib(client)
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for start in range(0, len(uids), BATCH):
            response = client.fetch(uids[start : start + BATCH], ["BODY.PEEK[]"])
            for data in response.values():
                count += 1
                if handle is not None:
                    handle(data[b"BODY[]"])
    return count


def best(repeat: int, work: Callable[[], object]) -> float:
    """The shortest wall time of ``repeat`` runs of ``work``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def stdlib_parse(raw: bytes) -> None:
    """The Python floor: policy.default parse, every body decoded, every attachment's content read."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if not part.is_multipart():
            part.get_content()


def make_profile(app: Postroom, dovecot: Dovecot, user: str, name: str = "bench") -> int:
    with app.transaction() as session:
        profile = create_profile(
            session,
            app.plugins,
            DEFAULT_CONTACT_CENTER_ID,
            name,
            ProfileFields(
                username=user,
                password=dovecot.passwords[user],
                fetch_protocol="imap",
                incoming_host=dovecot.host,
                incoming_port=dovecot.imap_port,
                tls_verify=False,
            ),
        )
        return profile.id


def postroom_fetch(url: str, dovecot: Dovecot, user: str, profiler: cProfile.Profile | None) -> float:
    """(c) postroom's fetch cycle, as ``postroom fetch`` runs it, into the database at ``url``."""
    app = Postroom(url)
    try:
        app.init()
        profile_id = make_profile(app, dovecot, user)
        fetcher = Fetcher(app)
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = fetcher.fetch_profile(profile_id)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
    finally:
        app.dispose()
    if report.error or report.stored != report.listed:
        raise SystemExit(f"postroom fetch went wrong: {report}")
    return elapsed


#: Starts the command and reports its peak RSS. A small launcher process matters: a child forked from
#: this big benchmark process would count the pages it shared with us before exec in its high-water mark.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_cli_fetch(url: str, profile: str) -> tuple[float, int]:
    """A real ``postroom fetch`` process: its wall time and its peak RSS in bytes (wait4's ru_maxrss)."""
    env = {**os.environ, "POSTROOM_DATABASE_URL": url}
    command = [sys.executable, "-m", "postroom", "fetch", "--profile", profile]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"postroom fetch exited {done.returncode}: {done.stderr}")
    return elapsed, int(done.stdout.split()[-1]) * 1024


def cli_database(url: str, dovecot: Dovecot, user: str, profile: str) -> None:
    app = Postroom(url)
    try:
        app.init()
        make_profile(app, dovecot, user, profile)
    finally:
        app.dispose()


# --- reporting ----------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.0f} mails/s  ({seconds:6.2f} s)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mails", type=int, default=2000, help="how many mails to load (default 2000)")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_URL,
        help="a PostgreSQL server URL; fresh databases are created on it and dropped afterwards",
    )
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best counts")
    parser.add_argument("--big-mail-mb", type=float, default=25.0, help="size of the peak-memory mail")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of (c) on PostgreSQL to FILE")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="dvb", dir="/tmp"))
    base.chmod(0o755)
    (base / "cert").mkdir(mode=0o755)
    dovecot = Dovecot(base, make_certificate(base / "cert"))
    dovecot.start()
    try:
        run(dovecot, base, args)
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)


def run(dovecot: Dovecot, base: Path, args: argparse.Namespace) -> None:
    mails = generate_mails(args.mails, args.seed)
    user, _ = dovecot.new_user("bench")
    started = time.perf_counter()
    load(dovecot, user, mails)
    total = sum(len(m) for m in mails)
    print(
        f"loaded {len(mails)} mails ({total / 1e6:.1f} MB, seed {args.seed}) into Dovecot "
        f"in {time.perf_counter() - started:.1f} s"
    )
    print(f"Python {sys.version.split()[0]}, PostgreSQL server {make_url(args.database_url).host}")
    raw_fetch(dovecot, user)  # warm Dovecot's caches so (a) does not pay for the first read

    # Each measurement is the best of --repeat runs: other work on the machine only ever adds time.
    time_a = best(args.repeat, lambda: raw_fetch(dovecot, user))
    count = raw_fetch(dovecot, user)
    time_b = best(args.repeat, lambda: raw_fetch(dovecot, user, stdlib_parse))

    def into_postgresql() -> float:
        with scratch_postgresql(args.database_url) as url:
            return postroom_fetch(url, dovecot, user, None)

    sqlite_dir = Path(tempfile.mkdtemp(prefix="prb"))
    try:
        time_pg = min(into_postgresql() for _ in range(args.repeat))
        time_sqlite = min(
            postroom_fetch(f"sqlite:///{sqlite_dir / f'bench-{n}.sqlite'}", dovecot, user, None)
            for n in range(args.repeat)
        )
        with scratch_postgresql(args.database_url) as url:
            cli_database(url, dovecot, user, "bench")
            time_cli, _ = run_cli_fetch(url, "bench")
        memory = peak_memory(dovecot, args, sqlite_dir)
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)

    print()
    print(f"(a)  raw IMAP fetch, batches of {BATCH}      {rate(count, time_a)}")
    print(f"(b)  (a) + stdlib policy.default parse  {rate(count, time_b)}")
    print(f"(c)  postroom fetch into PostgreSQL     {rate(count, time_pg)}")
    print(f"(c)  postroom fetch into SQLite         {rate(count, time_sqlite)}")
    print(f"     'postroom fetch' process, PostgreSQL {rate(count, time_cli)}  (start-up included)")
    print()
    print(f"ratio (c)/(b), time taken, PostgreSQL: {time_pg / time_b:.2f}  (target <= 1.5)")
    print(f"ratio (c)/(b), time taken, SQLite:     {time_sqlite / time_b:.2f}")
    print()
    for line in memory:
        print(line)
    if args.profile:
        # A run of its own: cProfile slows Python code down about twofold, so it is never the timed one.
        profiler = cProfile.Profile()
        with scratch_postgresql(args.database_url) as url:
            postroom_fetch(url, dovecot, user, profiler)
        profiler.dump_stats(args.profile)
        print(f"\ncProfile of (c) on PostgreSQL written to {args.profile}; the top by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


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
    for label in ("SQLite", "PostgreSQL"):
        with fresh_database(label, args.database_url, directory) as url:
            cli_database(url, dovecot, empty, "empty")
            cli_database(url, dovecot, big, "big")
            _, baseline = run_cli_fetch(url, "empty")
            _, peak = run_cli_fetch(url, "big")
        growth = peak - baseline
        lines.append(
            f"  {label:10} baseline {baseline / 2**20:6.1f} MiB, peak {peak / 2**20:6.1f} MiB, "
            f"growth {growth / 2**20:6.1f} MiB = {growth / len(raw):.2f} x the mail (target <= 4)"
        )
    return lines


@contextmanager
def fresh_database(label: str, server_url: str, directory: Path) -> Iterator[str]:
    if label == "PostgreSQL":
        with scratch_postgresql(server_url) as url:
            yield url
    else:
        yield f"sqlite:///{directory / f'mem-{uuid.uuid4().hex}.sqlite'}"


if __name__ == "__main__":
    main()
