"""``postroom bounce explain FILE``: what the bounce readers make of a mail, for operators debugging a format."""

from __future__ import annotations

from pathlib import Path

import click

from postroom.cli._common import PostroomGroup, command, echo, json_option, print_json, print_table, state
from postroom.core.contract.bounces import BounceReport
from postroom.core.contract.errors import UserError
from postroom.core.mail.bounces import completed, read_bounce
from postroom.core.mail.parse import MailParseError, parse_mail


@click.group("bounce", cls=PostroomGroup)
def bounce_group() -> None:
    """Bounces: how the bounce readers read a failure mail."""


def _completed(report: BounceReport) -> BounceReport:
    return BounceReport(
        format=report.format,
        recipients=[completed(r) for r in report.recipients],
        original_message_ids=list(report.original_message_ids),
        reporting_server=report.reporting_server,
    )


def _print_recipients(report: BounceReport) -> None:
    print_table(
        ["address", "status", "reason", "hard", "diagnostic"],
        [[r.address, r.status, r.reason, "hard" if r.hard else "soft", r.diagnostic] for r in report.recipients],
        empty="No failed recipient.",
    )


@command(bounce_group, "explain")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def explain(file: Path, as_json: bool) -> None:
    """Show each bounce reader's verdict on the mail in FILE and the merged report postroom acts on."""
    app = state().app()
    try:
        parsed = parse_mail(file.read_bytes())
    except MailParseError as error:
        raise UserError(f"{file} is not a mail postroom can read: {error}") from error
    except OSError as error:
        raise UserError(f"{file} cannot be read: {error.strerror}.") from error
    reading = read_bounce(parsed, app.plugins.read_bounce)
    verdicts = [(name, _completed(report)) for name, report in reading.verdicts]
    if as_json:
        print_json({
            "verdicts": [{"reader": name, **report.as_json()} for name, report in verdicts],
            "merged": reading.merged.as_json() if reading.merged else None,
            "forwarded": reading.forwarded,
        })
        return
    if not verdicts:
        echo("No bounce reader takes this mail for a bounce.")
        return
    for name, report in verdicts:
        echo(f"Reader {name}: format {report.format}, reporting server {report.reporting_server or 'not named'}")
        _print_recipients(report)
        echo()
    merged = reading.merged
    assert merged is not None
    echo(f"Merged report: format {merged.format}" + (f", forwarded as {reading.forwarded}" if reading.forwarded else ""))
    echo(f"Reporting server: {merged.reporting_server or 'not named'}")
    echo(f"Original Message-IDs: {', '.join(merged.original_message_ids) or 'none found'}")
    _print_recipients(merged)
    hard = [r.address for r in merged.recipients if r.hard]
    echo(
        f"Verdict: hard failure of {', '.join(hard)}: escalates the customer's ticket."
        if hard
        else "Verdict: soft failures only: recorded, not escalated."
        if merged.recipients
        else "Verdict: a bounce naming no readable recipient."
    )


def register(cli: click.Group) -> None:
    cli.add_command(bounce_group)
