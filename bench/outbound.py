"""Benchmark: N replies through ``postroom send`` versus raw smtplib sending the same N mails on one connection.

Run ``python -m bench.outbound`` (SQLite in a temporary directory) or add
``--database-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres`` to run on a throwaway
database created on that PostgreSQL server. An aiosmtpd server runs in its own process, so that
neither client shares an interpreter with it; both are timed in the same run. The target is a
ratio of at most 2 between ``postroom send`` (a real process, start-up included) and smtplib.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import make_msgid
from pathlib import Path

from sqlalchemy import select

from bench.scratch import scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data.directory import add_campaign, add_queue
from postroom.core.data.models import MediaProfile, Message, MessageRaw, SendState, SMessageSendInfo, Ticket
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.data.rules import add_rule
from postroom.core.inbound.pipeline import InboundPipeline
from postroom.core.outbound.compose import compose_reply
from postroom.core.outbound.outbox import Outbox

_SERVER = """
import sys, threading
from aiosmtpd.controller import Controller
class Counter:
    count = 0
    lock = threading.Lock()
    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
        return "250 2.0.0 OK"
handler = Counter()
controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]), ready_timeout=15)
controller.start()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "count":
        print(handler.count, flush=True)
    else:
        break
controller.stop()
"""


class SmtpServerProcess:
    """aiosmtpd in a child process that answers ``count`` on its standard input."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    def count(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait(timeout=15)


@contextmanager
def scratch_database(url: str | None, directory: Path) -> Iterator[str]:
    """The SQLite file in ``directory``, or a database of its own on the given PostgreSQL server."""
    if url is None:
        yield f"sqlite:///{directory / 'bench.sqlite'}"
        return
    with scratch_postgresql(url) as scratch:
        yield scratch


def queue_replies(app: Postroom, port: int, count: int, tickets: int = 10) -> None:
    """A profile sending to the benchmark server, a few tickets, and ``count`` composed replies."""
    with app.transaction() as session:
        campaign = add_campaign(session, 1, "Bench")
        queue = add_queue(session, campaign, "All")
        profile = create_profile(
            session,
            app.plugins,
            1,
            "bench",
            ProfileFields(
                send_protocol="smtp",
                outgoing_host="127.0.0.1",
                outgoing_port=port,
                send_from_name="Bench Desk",
                send_from_address="desk@bench.test",
                subject_prefix="[Bench]",
            ),
        )
        add_rule(session, profile, campaign, queue)
        pipeline = InboundPipeline(session, app.plugins, profile)
        for number in range(tickets):
            raw = (
                f"From: Customer {number} <customer{number}@example.org>\r\nTo: desk@bench.test\r\n"
                f"Subject: Question {number}\r\nMessage-ID: {make_msgid(domain='example.org')}\r\n\r\n"
                "Hello, where is my parcel?\r\n"
            ).encode()
            pipeline.store(f"bench/{number}", raw)
    with app.transaction() as session:
        all_tickets = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        for number in range(count):
            compose_reply(session, app.plugins, all_tickets[number % len(all_tickets)], f"Answer {number}.")


def raw_smtplib(app: Postroom, port: int) -> float:
    """Seconds smtplib needs for the same mails, envelope and bytes, over one connection."""
    with app.sessions() as session:
        mails = session.execute(
            select(SMessageSendInfo.envelope_from, SMessageSendInfo.pending_recipients, MessageRaw.raw)
            .join(MessageRaw, MessageRaw.message_pk == SMessageSendInfo.message_pk)
            .order_by(SMessageSendInfo.id)
        ).all()
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for envelope_from, recipients, raw in mails:
            client.sendmail(envelope_from or "", json.loads(recipients), raw)
    return time.perf_counter() - started


def _postroom_send(url: str) -> float:
    """Seconds one ``postroom send`` process takes, start to exit."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "postroom", "send", "--database-url", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started


def requeue(app: Postroom, recipients: dict[int, str]) -> None:
    """Put every sent reply back in the queue, with its recipients pending again."""
    with app.transaction() as session:
        for row in session.scalars(select(SMessageSendInfo)):
            row.state, row.attempts, row.sent_at = SendState.QUEUED, 0, None
            row.claimed_by, row.claim_expires_at = None, None
            row.pending_recipients = recipients[row.id]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a scratch database is made there)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="prbench") as directory:
        os.environ["POSTROOM_HOME"] = directory
        server = SmtpServerProcess()
        try:
            with scratch_database(args.database_url, Path(directory)) as url:
                app = Postroom(url)
                app.init()
                started = time.perf_counter()
                queue_replies(app, server.port, args.count)
                compose_seconds = time.perf_counter() - started

                with app.sessions() as session:
                    pending = dict(
                        session.execute(
                            select(SMessageSendInfo.id, SMessageSendInfo.pending_recipients)
                        ).all()
                    )
                # Each measurement is the best of --repeat runs, interleaved, so that a burst of
                # noise on the machine does not decide the ratio.
                runs: dict[str, list[float]] = {"smtplib": [], "process": [], "startup": [], "in_process": []}
                sent = 0
                for _ in range(args.repeat):
                    runs["smtplib"].append(raw_smtplib(app, server.port))
                    runs["process"].append(_postroom_send(url))
                    runs["startup"].append(_postroom_send(url))  # nothing due: start-up and one empty claim
                    sent += 2 * args.count
                    assert server.count() == sent, "postroom send did not send every reply"
                    requeue(app, pending)
                    started = time.perf_counter()
                    report = Outbox(app).send_due()
                    runs["in_process"].append(time.perf_counter() - started)
                    sent += args.count
                    assert report.sent == args.count and server.count() == sent, (report, server.count())
                    requeue(app, pending)
                smtplib_seconds, process_seconds, startup_seconds, in_process_seconds = (
                    min(runs[name]) for name in ("smtplib", "process", "startup", "in_process")
                )
                with app.sessions() as session:
                    assert session.query(Message).count() >= args.count
                    assert session.query(MediaProfile).count() == 1
                app.dispose()
        finally:
            server.stop()

    database = "PostgreSQL" if args.database_url else "SQLite"
    marginal = process_seconds - startup_seconds
    rows = [
        ("compose + queue (one transaction)", compose_seconds, None),
        ("raw smtplib, one connection", smtplib_seconds, None),
        ("postroom send (process, wall time)", process_seconds, process_seconds / smtplib_seconds),
        ("  of which start-up (empty queue)", startup_seconds, None),
        ("  sending alone", marginal, marginal / smtplib_seconds),
        ("Outbox.send_due (in process)", in_process_seconds, in_process_seconds / smtplib_seconds),
    ]
    print(f"{args.count} replies, {database}, aiosmtpd in its own process, best of {args.repeat}")
    for label, seconds, ratio in rows:
        rate = f"{args.count / seconds:8.0f}/s" if not label.startswith("  of which") else " " * 10
        print(f"  {label:36} {seconds:6.2f} s {rate}" + (f"  ratio {ratio:.2f}" if ratio else ""))


if __name__ == "__main__":
    main()
