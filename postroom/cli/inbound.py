"""``postroom fetch``, ``profile test``, ``unrouted list`` and ``quarantine list|show|export|retry``: the inbound side."""

from __future__ import annotations

import sys
from typing import Any

import click

from postroom.cli._common import (
    ROW_ID,
    PostroomGroup,
    audited,
    command,
    contact_center_id,
    echo,
    json_option,
    parse_time_limit_option,
    print_json,
    print_table,
    state,
)
from postroom.cli._text import visible
from postroom.cli.profiles import profile_group
from postroom.core import servers
from postroom.core.contract.errors import UserError
from postroom.core.data import profiles
from postroom.core.data.models import MessageStatus
from postroom.core.inbound import quarantine
from postroom.core.inbound.fetch import BATCH_MAILS, Fetcher, profiles_to_fetch
from postroom.core.inbound.queries import held_mail_as_json

#: Show a progress bar on a terminal when a cycle has at least this many new mails.
PROGRESS_THRESHOLD = 50


def _progress_printer(profile: str) -> Any:
    """A progress callback drawing a click progress bar once a cycle is big enough to deserve one."""
    bar: Any = None

    def advance(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and total >= PROGRESS_THRESHOLD and sys.stderr.isatty():
            bar = click.progressbar(length=total, label=f"fetching {visible(profile)}", file=sys.stderr)
            bar.__enter__()
        if bar is not None:
            bar.update(done)
            if bar.pos >= total:
                bar.__exit__(None, None, None)
                bar = None

    return advance


@command(None, "fetch")
@click.option("--profile", "profile_name", help="Fetch only this profile.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=BATCH_MAILS,
    show_default=True,
    help="Mails downloaded and committed together; smaller batches hold less memory.",
)
@parse_time_limit_option
@json_option
def fetch_command(profile_name: str | None, batch_size: int, parse_time_limit: float, as_json: bool) -> None:
    """Run one fetch cycle for each incoming-enabled profile, then exit.

    Exits with status 1 when a profile failed (its reason goes to stderr and to 'profile list').
    """
    app = state().app()
    cc = contact_center_id(app)
    fetcher = Fetcher(app, batch_mails=batch_size, parse_time_limit=parse_time_limit)
    with app.transaction() as session:
        targets = [(p.id, p.name) for p in profiles_to_fetch(session, cc, profile_name)]
    reports = [
        fetcher.fetch_profile(profile_id, progress=None if as_json else _progress_printer(name))
        for profile_id, name in targets
    ]
    if as_json:
        print_json([r.as_json() for r in reports])
    else:
        print_table(
            ["profile", "fetched", "stored", "duplicates", "quarantined", "deleted", "error"],
            [
                [r.profile, r.fetched, r.stored, r.duplicates, r.quarantined, r.deleted, r.error]
                for r in reports
            ],
            empty="No profile has incoming mail enabled.",
        )
    failed = [r for r in reports if r.error]
    for report in failed:
        echo(f"Error: profile {report.profile!r}: {report.error}", err=True)
    if failed:
        sys.exit(1)


@command(profile_group, "test")
@click.argument("name")
def test_profile(name: str) -> None:
    """Log in to the profile's incoming and outgoing servers and check the folders; fetch nothing."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        results = servers.check_profile(profiles.get_profile(session, name, cc), app.plugins)
    if not results:
        echo(f"Profile {name!r} has neither incoming nor outgoing mail enabled.")
    for result in results:
        echo(f"{'ok' if result.ok else 'FAILED':6} {result.what}: {result.detail}")
    if any(not r.ok for r in results):
        sys.exit(1)


def _held_messages(status: MessageStatus, as_json: bool, empty: str) -> None:
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = held_mail_as_json(session, cc, status)
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "profile", "from", "subject", "reason"],
        [[d["id"], d["profile"], d["from"], d["subject"], d["reason"]] for d in documents],
        empty=empty,
    )


@click.group("unrouted", cls=PostroomGroup)
def unrouted_group() -> None:
    """Mail no routing rule matched yet: stored and held until a rule routes it."""


@command(unrouted_group, "list")
@json_option
def unrouted_list(as_json: bool) -> None:
    """List mail held as unrouted."""
    _held_messages(MessageStatus.UNROUTED, as_json, "No unrouted mail.")


@click.group("quarantine", cls=PostroomGroup)
def quarantine_group() -> None:
    """Mail that could not be parsed or broke a plugin: stored raw with the reason."""


@command(quarantine_group, "list")
@json_option
def quarantine_list(as_json: bool) -> None:
    """List quarantined mail."""
    _held_messages(MessageStatus.QUARANTINED, as_json, "Nothing in quarantine.")


@command(quarantine_group, "show")
@click.argument("message_id", type=ROW_ID)
@json_option
def quarantine_show(message_id: int, as_json: bool) -> None:
    """Show a quarantined mail: why it is there, and its headers."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        document = quarantine.show(session, quarantine.quarantined(session, cc, message_id))
    if as_json:
        print_json(document)
        return
    for key in ("id", "profile", "reason", "message_id", "from", "subject", "received_at", "size"):
        echo(f"{key + ':':13} {'' if document[key] is None else document[key]}")
    echo("")
    echo(document["headers"])


@command(quarantine_group, "export")
@click.argument("message_id", type=ROW_ID)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE, not stdout.")
def quarantine_export(message_id: int, output: str | None) -> None:
    """Write the raw mail (.eml), exactly as fetched, to standard output or FILE."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        raw = quarantine.raw_bytes(session, quarantine.quarantined(session, cc, message_id))
    if output is None:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        return
    with open(output, "wb") as file:
        file.write(raw)
    echo(f"Wrote {len(raw)} bytes to {output}.", err=True)


@command(quarantine_group, "retry")
@click.argument("message_id", type=ROW_ID, required=False)
@click.option("--all", "retry_all", is_flag=True, help="Try every quarantined mail again.")
@json_option
def quarantine_retry(message_id: int | None, retry_all: bool, as_json: bool) -> None:
    """Run the pipeline again on a quarantined mail's stored bytes (once its cause is fixed).

    The mail lands on its ticket once; one that fails again stays quarantined with the new reason,
    and the command then exits with status 1.
    """
    if (message_id is None) == (not retry_all):
        raise UserError("Give either a message ID or --all.")
    app = state().app()
    cc = contact_center_id(app)
    if message_id is None:
        with app.transaction() as session:
            ids = quarantine.quarantined_ids(session, cc)
    else:
        ids = [message_id]
    results = []
    for pk in ids:
        with app.transaction() as session:  # one mail per transaction: its signals follow its commit
            result = quarantine.retry(session, app.plugins, quarantine.quarantined(session, cc, pk))
            audited(session, "quarantine.retry", pk, result.as_json())
            results.append(result)
    if as_json:
        print_json([r.as_json() for r in results])
    elif not results:
        echo("Nothing in quarantine.")
    for r in results if not as_json else []:
        where = f" on ticket {r.ticket_id}" if r.ticket_id else ""
        echo(f"Message {r.message_pk}: {r.status}{where}" + (f" ({r.reason})" if r.reason else ""))
    if any(r.status == MessageStatus.QUARANTINED for r in results):
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(fetch_command)
    cli.add_command(unrouted_group)
    cli.add_command(quarantine_group)
