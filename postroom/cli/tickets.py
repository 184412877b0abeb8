"""``postroom ticket ...``: list, show, merge, split and close tickets."""

from __future__ import annotations

import click

from postroom.cli._common import (
    ROW_ID,
    PostroomGroup,
    command,
    contact_center_id,
    echo,
    json_option,
    print_json,
    print_table,
    state,
)
from postroom.cli._text import one_line
from postroom.core.data import tickets


@click.group("ticket", cls=PostroomGroup)
def ticket_group() -> None:
    """Tickets: the customers' cases."""


@command(ticket_group, "list")
@click.option("--state", "states", multiple=True, type=click.Choice(["open", "closed", "merged"]))
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True, help="Newest first.")
@json_option
def list_tickets(states: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List tickets, newest activity first."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = tickets.list_tickets(session, cc, states, limit)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "subject", "state", "esc", "customer", "campaign", "queue", "profile", "msgs"],
        [
            [
                d["id"],
                d["subject"],
                d["state"] + (f"→{d['merged_into']}" if d["merged_into"] else ""),
                "!" if d["escalated"] else "",
                d["customer_id"],
                d["campaign"],
                d["queue"],
                d["source_profile"],
                d["message_count"],
            ]
            for d in documents
        ],
        empty="No tickets yet.",
    )


@command(ticket_group, "show")
@click.argument("ticket_id", type=ROW_ID)
@json_option
def show_ticket(ticket_id: int, as_json: bool) -> None:
    """Show a ticket and its messages."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        document = tickets.ticket_as_json(
            session, tickets.get_ticket(session, cc, ticket_id), with_messages=True
        )
    if as_json:
        print_json(document)
        return
    echo(f"Ticket {document['id']} {document['case_token']}: {one_line(document['subject'] or '')}")
    echo(
        f"  state {document['state']}{' (escalated)' if document['escalated'] else ''}, "
        f"campaign {document['campaign']}, queue {document['queue']}, profile {document['source_profile']}"
    )
    print_table(
        ["id", "dir", "date", "from", "subject", "flags", "attachments"],
        [
            [
                m["id"],
                "in" if m["direction"] == "inbound" else "out",
                m["date"],
                m["from"],
                m["subject"],
                ",".join(
                    f
                    for f, on in (
                        ("soft bounce" if "bounce-soft" in m["tags"] else "bounce", m["is_failure_mail"]),
                        ("auto-reply", m["is_auto_reply"]),
                    )
                    if on
                ),
                ", ".join(a["name"] or a["content_type"] for a in m["attachments"]),
            ]
            for m in document["messages"]
        ],
    )


@command(ticket_group, "merge")
@click.argument("source", type=ROW_ID)
@click.argument("target", type=ROW_ID)
def merge(source: int, target: int) -> None:
    """Merge ticket SOURCE into ticket TARGET; later mail for SOURCE goes to TARGET."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        tickets.merge_tickets(
            session, tickets.get_ticket(session, cc, source), tickets.get_ticket(session, cc, target)
        )
    echo(f"Merged ticket {source} into ticket {target}.")


@command(ticket_group, "split")
@click.argument("ticket_id", type=ROW_ID)
@click.option(
    "--message", "message_ids", type=ROW_ID, multiple=True, required=True, help="A message id (repeatable)."
)
def split(ticket_id: int, message_ids: tuple[int, ...]) -> None:
    """Move the chosen messages of a ticket to a new ticket."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        new = tickets.split_ticket(session, tickets.get_ticket(session, cc, ticket_id), list(message_ids))
        new_id = new.id
    echo(f"Split {len(message_ids)} message(s) of ticket {ticket_id} into new ticket {new_id}.")


@command(ticket_group, "close")
@click.argument("ticket_id", type=ROW_ID)
def close(ticket_id: int) -> None:
    """Close a ticket; later mail of the customer opens a new one."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        tickets.close_ticket(session, tickets.get_ticket(session, cc, ticket_id))
    echo(f"Closed ticket {ticket_id}.")


def register(cli: click.Group) -> None:
    cli.add_command(ticket_group)
