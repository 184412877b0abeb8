"""``postroom demo``: run the whole job once on the embedded default and show what happened."""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import click
from sqlalchemy import select

from postroom.cli._common import PostroomCommand, echo, print_table
from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.messages import stored_addresses
from postroom.core.data.models import Customer, FailedMessageSendInfo, Message, SMessageSendInfo, Ticket
from postroom.core.data.tickets import ticket_as_json
from postroom.demo.story import run_demo

#: The console account the demo makes (an operator), its password printed.
DEMO_OPERATOR = "demo"


@click.command("demo", cls=PostroomCommand)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the demo (default: a new temporary one). It must be empty.",
)
def demo_command(home: Path | None) -> None:
    """Fetch, route, resolve, reply and retry on a local Maildir and SQLite: no server, no network."""
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="postroom-demo-"))
    try:
        if home.exists() and any(home.iterdir()):
            raise UserError(f"The demo home {str(home)!r} is not empty; give a new or empty directory.")
        home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"The demo home {str(home)!r} cannot be made or used: {error.strerror or error}; "
            "give a new or empty directory postroom may write in."
        ) from error
    echo(f"postroom demo in {home}\n")
    result = run_demo(home)
    app = result.app
    fetch = result.fetch
    echo(
        f"Fetched {fetch.fetched} mails from the Maildir {home / 'mailbox'}: stored {fetch.stored}, "
        f"duplicates {fetch.duplicates}, quarantined {fetch.quarantined}, deleted after storing {fetch.deleted}.\n"
    )
    with app.transaction() as session:
        names = dict(session.execute(select(Customer.id, Customer.name)).all())
        tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
        echo("Tickets")
        print_table(
            ["id", "case", "subject", "customer", "state", "escalated", "messages"],
            [
                [
                    t.id,
                    t.case_token,
                    t.subject,
                    names.get(t.customer_id or 0),
                    t.state,
                    "yes" if t.escalated else "",
                    ticket_as_json(session, t)["message_count"],
                ]
                for t in tickets
            ],
        )
        echo("\nMessages")
        messages = session.scalars(select(Message).order_by(Message.ticket_id, Message.id)).all()
        print_table(
            ["ticket", "dir", "from", "subject", "notes"],
            [
                [
                    m.ticket_id,
                    "in" if m.direction == "inbound" else "out",
                    m.from_address,
                    m.subject,
                    ", ".join(
                        n for n, on in (("bounce", m.is_failure_mail), ("auto-reply", m.is_auto_reply)) if on
                    ),
                ]
                for m in messages
            ],
        )
        echo("\nSend log (s_message_send_info)")
        rows = session.execute(
            select(SMessageSendInfo, Message)
            .join(Message, Message.id == SMessageSendInfo.message_pk)
            .order_by(SMessageSendInfo.id)
        ).all()
        print_table(
            ["id", "ticket", "to", "state", "attempts", "next attempt", "policy", "last error"],
            [
                [
                    info.id,
                    info.ticket_id,
                    ", ".join(stored_addresses(message.to_addresses)),
                    info.state,
                    info.attempts,
                    info.next_attempt_at,
                    info.policy,
                    info.last_error,
                ]
                for info, message in rows
            ],
        )
        failures = session.scalars(select(FailedMessageSendInfo).order_by(FailedMessageSendInfo.id)).all()
        if failures:
            echo("\nFailed attempts (failed_message_send_info)")
            print_table(
                ["outbox", "attempt", "recipient", "code", "category", "policy", "retry at"],
                [
                    [
                        f.send_info_id,
                        f.attempt,
                        f.recipient,
                        f.enhanced_code or f.reply_code,
                        f.category,
                        f.policy,
                        f.next_attempt_at,
                    ]
                    for f in failures
                ],
            )
    sent = list((home / "sent" / "new").iterdir()) + list((home / "sent" / "cur").iterdir())
    echo(f"\nSent mail is in the Maildir sink {home / 'sent'} ({len(sent)} message(s)).")
    _console_account(app, home)
    echo(f"Explore further: POSTROOM_HOME={home} {_postroom_command()} ticket show 1")
    app.dispose()


def _console_account(app: Postroom, home: Path) -> None:
    """An operator of the console for the demo's database, with a password made here and printed: the
    demo's throw-away data, so that 'postroom web' on its home can be signed in to at once."""
    from postroom.web import users  # the console's account store (Argon2); no Flask

    password = secrets.token_urlsafe(12)
    with app.transaction() as session:
        users.create_user(session, "demo", DEMO_OPERATOR, password, "operator", [], DEFAULT_CONTACT_CENTER_ID)
    echo(
        f"\nThe console: POSTROOM_HOME={home} {_postroom_command()} web, then open http://127.0.0.1:8080/ "
        f"and sign in as {DEMO_OPERATOR!r} with the password {password} (made for this demo only)."
    )


def register(cli: click.Group) -> None:
    cli.add_command(demo_command)


def _postroom_command() -> str:
    """How to type ``postroom`` here: the name when PATH finds it, else this script's path (.venv/bin/postroom)."""
    running = Path(sys.argv[0]).resolve()
    found = shutil.which("postroom")
    if found is not None and Path(found).resolve() == running:
        return "postroom"
    return str(running) if running.name == "postroom" else "postroom"
