"""``postroom ticket reply``, ``send``, ``outbox list`` and ``failures list``: the outgoing side.

``reply`` and ``send`` take a hidden ``--now ISO-8601`` option that fixes the clock the outbox
uses (when a reply is due, when a retry comes); it exists for tests and demos of the retry
policies, never for production.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from postroom.cli._common import (
    ROW_ID,
    PostroomGroup,
    audited,
    command,
    contact_center_id,
    echo,
    json_option,
    print_json,
    print_table,
    state,
)
from postroom.cli.tickets import ticket_group
from postroom.core.contract.errors import UserError
from postroom.core.data.validation import BATCH_SIZE
from postroom.core.outbound import manual, queries
from postroom.core.outbound.outbox import DEFAULT_BATCH_SIZE, Outbox


def _parse_now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


now_option = click.option(
    "--now", callback=_parse_now, hidden=True, help="Fix the outbox clock (ISO 8601; tests only)."
)


def _addresses(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from postroom.core.mail.addresses import address_problem

    for value in values:
        problem = address_problem(value.strip())
        if problem:
            raise click.BadParameter(f"{value!r} cannot be sent to: {problem}.", param=param)
    return tuple(value.strip() for value in values)


@command(None, "reply")
@click.argument("ticket_id", type=ROW_ID)
@click.option("--body", help="The reply text.")
@click.option(
    "--body-file",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="Read the reply text from a file ('-' for standard input).",
)
@click.option("--agent", "agent_name", help="The agent who writes the reply (fills {agent_name}).")
@click.option(
    "--attach",
    "attach",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file to send with the reply (repeatable).",
)
@click.option(
    "--to",
    "to",
    multiple=True,
    callback=_addresses,
    help="Send to this address instead of the computed recipients (repeatable).",
)
@click.option(
    "--cc",
    "cc",
    multiple=True,
    callback=_addresses,
    help="With --to: a copy to this address (repeatable).",
)
@now_option
@json_option
def reply(
    ticket_id: int,
    body: str | None,
    body_file: Path | None,
    agent_name: str | None,
    attach: tuple[Path, ...],
    to: tuple[str, ...],
    cc: tuple[str, ...],
    now: datetime | None,
    as_json: bool,
) -> None:
    """Queue a reply to a ticket's customer; 'postroom send' or the worker sends it.

    The reply goes to the answered mail's Reply-To (else its sender), with a copy to its other
    recipients; an address no server can take is skipped and named. --to/--cc replace them.
    """
    if cc and not to:
        raise UserError("--cc needs at least one --to: the chosen recipients replace the computed ones.")
    if (body is None) == (body_file is None):
        raise UserError("Give the reply text with exactly one of --body or --body-file.")
    if body_file is not None:
        try:
            body = sys.stdin.read() if str(body_file) == "-" else body_file.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"The reply file {str(body_file)!r} cannot be read: {error}.") from error
    app = state().app()
    center = contact_center_id(app)
    # Not imported for 'postroom send', which never composes.
    from postroom.core.contract.drafts import OutgoingAttachment
    from postroom.core.outbound.compose import queue_reply

    attachments = [OutgoingAttachment.from_file(path) for path in attach]
    queued = queue_reply(
        app,
        center,
        ticket_id,
        body or "",
        agent_name=agent_name,
        now=now,
        attachments=attachments,
        to=to,
        cc=cc,
    )
    if as_json:
        print_json(queued.as_json())
        return
    copies = f" (cc {', '.join(queued.cc)})" if queued.cc else ""
    echo(
        f"Queued reply {queued.send_info_id} on ticket {ticket_id} to {', '.join(queued.to)}{copies} "
        f"through profile {queued.profile_name!r}: {queued.subject}"
    )
    for skipped in queued.skipped:
        echo(skipped.sentence)


@command(None, "send")
@click.option(
    "--batch-size",
    type=click.IntRange(BATCH_SIZE.low, BATCH_SIZE.high),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="How many due replies one claim takes.",
)
@now_option
@json_option
def send_command(batch_size: int, now: datetime | None, as_json: bool) -> None:
    """Send every due reply once (of all contact centres), then exit."""
    app = state().app()
    report = Outbox(app, batch_size=batch_size).send_due(now)
    if as_json:
        print_json(report.as_json())
        return
    echo(
        f"Sent {report.sent}, retry scheduled {report.retry_scheduled}, failed {report.failed}"
        + (f" ({report.partial} partly delivered)" if report.partial else "")
        + (f"; {report.copy_errors} sent copies could not be stored" if report.copy_errors else "")
        + "."
    )


@click.group("outbox", cls=PostroomGroup)
def outbox_group() -> None:
    """Queued, sending, sent and failed replies (s_message_send_info)."""


@command(outbox_group, "list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["queued", "sending", "sent", "retry-scheduled", "failed"]),
    help="Only rows in this state (repeatable).",
)
@click.option("--ticket", "ticket_id", type=ROW_ID, help="Only the replies of this ticket.")
@json_option
def outbox_list(states: tuple[str, ...], ticket_id: int | None, as_json: bool) -> None:
    """List outgoing replies and their send state, oldest first."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = queries.outbox_as_json(session, cc, states, ticket_id)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "ticket", "profile", "to", "state", "tries", "next attempt", "last error"],
        [
            [
                d["id"],
                d["ticket_id"],
                d["profile"],
                ", ".join(d["to"]),
                d["state"],
                d["attempts"],
                d["next_attempt_at"],
                d["last_error"],
            ]
            for d in documents
        ],
        empty="The outbox is empty.",
    )


@command(outbox_group, "retry-now")
@click.argument("outbox_id", type=ROW_ID)
def outbox_retry_now(outbox_id: int) -> None:
    """Make a queued or retry-scheduled reply due now (the next send run tries it)."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        manual.retry_now(session, cc, outbox_id)
        audited(session, "outbox.retry-now", outbox_id)
    echo(f"Reply {outbox_id} is due now: the next send run ('postroom send' or the worker) tries it.")


@command(outbox_group, "cancel")
@click.argument("outbox_id", type=ROW_ID)
def outbox_cancel(outbox_id: int) -> None:
    """Give up a queued or retry-scheduled reply: it is never sent and stays listed as failed."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        manual.cancel(session, cc, outbox_id)
        audited(session, "outbox.cancel", outbox_id)
    echo(f"Reply {outbox_id} is cancelled.")


@click.group("failures", cls=PostroomGroup)
def failures_group() -> None:
    """Failed send attempts (failed_message_send_info): one row per failure and recipient."""


@command(failures_group, "list")
@click.option("--outbox", "outbox_id", type=ROW_ID, help="Only the failures of this outbox row.")
@json_option
def failures_list(outbox_id: int | None, as_json: bool) -> None:
    """List failed send attempts with the server's reply, its category and the policy's next attempt."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = queries.failures_as_json(session, cc, outbox_id)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "outbox", "try", "recipient", "code", "category", "policy", "next attempt", "text"],
        [
            [
                d["id"],
                d["outbox_id"],
                d["attempt"],
                d["recipient"],
                d["enhanced_code"] or d["reply_code"],
                d["category"],
                d["policy"],
                d["next_attempt_at"] or "never",
                d["text"],
            ]
            for d in documents
        ],
        empty="No failed send attempts.",
    )


def register(cli: click.Group) -> None:
    """Add ``send``, ``outbox`` and ``failures`` to the command line (and ``reply`` to ``ticket``)."""
    ticket_group.add_command(reply)
    cli.add_command(send_command)
    cli.add_command(outbox_group)
    cli.add_command(failures_group)
