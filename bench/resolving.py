"""Benchmark: does resolving stay cheap as tickets pile up? (issue 4)

Ingests the same 1000 mails (replies to stored mail, known customers writing about new things,
new senders) into a database already holding 1 000 tickets and then 100 000 tickets, with all
seven resolvers configured (the worst case: a mail no resolver matches runs every query), and
prints the per-mail cost of each and their ratio (target: at most 1.3).

    python -m bench.resolving [--database-url URL] [--mails 1000] [--small 1000] [--big 100000]

The default database is a fresh PostgreSQL database on the local server (created and dropped).
"""

from __future__ import annotations

import argparse
import mailbox
import random
import shutil
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from bench.scratch import scratch_postgresql
from postroom.core.app import Postroom
from postroom.core.data import directory, profiles, rules
from postroom.core.data.models import Customer, CustomerEmail, Message, MessageAddress, Ticket
from postroom.core.data.profiles import ProfileFields
from postroom.core.inbound.fetch import Fetcher

ALL_RESOLVERS = [
    "case-id",
    "customer",
    "customer-source-profile",
    "subject",
    "subject-customer",
    "subject-profile-customer",
    "observer-subject",
]
WORDS = [
    "order",
    "invoice",
    "delivery",
    "refund",
    "account",
    "password",
    "parcel",
    "upgrade",
    "contract",
    "warranty",
]


def seed_tickets(app: Postroom, start: int, count: int, rng: random.Random) -> None:
    """Bulk-insert ``count`` tickets (one inbound message each, half the customers writing twice)."""
    now = datetime.now(UTC)
    with app.engine.begin() as connection:
        batch = 5000
        for offset in range(start, start + count, batch):
            numbers = range(offset, min(offset + batch, start + count))
            customers = [
                {"id": n + 1, "contact_center_id": 1, "name": f"Customer {n}", "created_at": now}
                for n in numbers
            ]
            connection.execute(insert(Customer), customers)
            connection.execute(
                insert(CustomerEmail),
                [
                    {
                        "contact_center_id": 1,
                        "customer_id": n + 1,
                        "address": f"c{n}@seed.test",
                        "created_at": now,
                    }
                    for n in numbers
                ],
            )
            tickets = [
                {
                    "id": n + 1,
                    "contact_center_id": 1,
                    "campaign_id": 1,
                    "queue_id": 1,
                    "customer_id": n + 1,
                    "source_profile_id": 1,
                    "subject": f"{rng.choice(WORDS)} {n}",
                    "normalised_subject": f"{rng.choice(WORDS)} {n}",
                    "state": "open" if n % 3 else "closed",
                    "escalated": False,
                    "case_token": f"[#PR-{n + 1}]",
                    "created_at": now,
                    "last_activity_at": now - timedelta(seconds=n),
                }
                for n in numbers
            ]
            connection.execute(insert(Ticket), tickets)
            connection.execute(
                insert(Message),
                [
                    {
                        "id": n + 1,
                        "contact_center_id": 1,
                        "media_profile_id": 1,
                        "ticket_id": n + 1,
                        "customer_id": n + 1,
                        "direction": "inbound",
                        "status": "ticketed",
                        "message_id": f"seed-{n}@seed.test",
                        "from_address": f"c{n}@seed.test",
                        "to_addresses": "support@acme.test",
                        "cc_addresses": f"obs{n}@seed.test",
                        "subject": "x",
                        "is_auto_reply": False,
                        "is_failure_mail": False,
                        "tags": "",
                        "attachments": "[]",
                        "created_at": now,
                    }
                    for n in numbers
                ],
            )
            connection.execute(
                insert(MessageAddress),
                [
                    {"message_pk": n + 1, "role": role, "address": address}
                    for n in numbers
                    for role, address in (("from", f"c{n}@seed.test"), ("cc", f"obs{n}@seed.test"))
                ],
            )
        if app.engine.dialect.name == "postgresql":
            for table in ("customer", "ticket", "message"):
                connection.execute(text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))
            connection.execute(text("ANALYZE"))


def make_mails(count: int, seeded: int, rng: random.Random) -> list[bytes]:
    mails = []
    for number in range(count):
        mail = EmailMessage()
        kind = number % 3
        target = rng.randrange(seeded)
        if kind == 0:  # a reply in a stored thread
            mail["From"] = f"c{target}@seed.test"
            mail["Subject"] = f"Re: order {target}"
            mail["In-Reply-To"] = f"<seed-{target}@seed.test>"
        elif kind == 1:  # a known customer, a new subject
            mail["From"] = f"c{target}@seed.test"
            mail["Subject"] = f"{rng.choice(WORDS)} question {uuid.uuid4().hex[:6]}"
        else:  # a new sender
            mail["From"] = f"new{number}-{uuid.uuid4().hex[:6]}@example.test"
            mail["Subject"] = f"{rng.choice(WORDS)} {number}"
        mail["To"] = "support@acme.test"
        mail["Message-ID"] = f"<bench-{uuid.uuid4().hex}@example.test>"
        mail.set_content("Hello,\n\nplease help.\n")
        mails.append(mail.as_bytes())
    return mails


def ingest(app: Postroom, folder: Path, mails: list[bytes]) -> float:
    box = mailbox.Maildir(folder, create=True)
    for raw in mails:
        box.add(raw)
    with app.transaction() as session:
        profile_id = profiles.get_profile(session, "support", 1).id
    started = time.perf_counter()
    report = Fetcher(app).fetch_profile(profile_id)
    elapsed = time.perf_counter() - started
    assert report.error is None and report.stored == len(mails), report
    return elapsed / len(mails)


def setup(app: Postroom, folder: Path) -> None:
    app.init()
    with app.transaction() as session:
        profile = profiles.create_profile(
            session,
            app.plugins,
            1,
            "support",
            ProfileFields(fetch_protocol="maildir", incoming_folder=str(folder), delete_on_fetch=True),
        )
        profiles.set_resolvers(session, app.plugins, profile, ALL_RESOLVERS)
        campaign = directory.add_campaign(session, 1, "Support")
        rules.add_rule(session, profile, campaign, directory.add_queue(session, campaign, "First line"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", help="an empty database to use (default: a fresh local PostgreSQL one)"
    )
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--big", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(4711)
    workdir = Path(tempfile.mkdtemp(prefix="prbench"))
    with ExitStack() as stack:
        url = args.database_url or stack.enter_context(scratch_postgresql())
        measure(url, args, rng, workdir)


def measure(url: str, args: argparse.Namespace, rng: random.Random, workdir: Path) -> None:
    try:
        app = Postroom(url)
        setup(app, workdir / "inbox")
        seed_tickets(app, 0, args.small, rng)
        with app.transaction() as session:
            held = session.scalar(select(Ticket.id).order_by(Ticket.id.desc()).limit(1))
        ingest(app, workdir / "inbox", make_mails(100, args.small, rng))  # warm-up: caches, plans, imports
        small = ingest(app, workdir / "inbox", make_mails(args.mails, args.small, rng))
        seed_tickets(app, (held or 0) + args.mails * 3, args.big - args.small, rng)
        big = ingest(app, workdir / "inbox", make_mails(args.mails, args.big, rng))
        print(f"database: {make_url(url).get_backend_name()}, resolvers: {', '.join(ALL_RESOLVERS)}")
        print(f"{args.small:>7} tickets: {small * 1000:7.2f} ms per mail ({1 / small:6.0f} mails/s)")
        print(f"{args.big:>7} tickets: {big * 1000:7.2f} ms per mail ({1 / big:6.0f} mails/s)")
        print(f"ratio {args.big // 1000}k/{args.small // 1000}k: {big / small:.2f} (target <= 1.3)")
        app.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
