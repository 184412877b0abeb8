"""The ``postroom`` command line: parses, calls the core services, prints. No logic lives here."""

from __future__ import annotations

from importlib import metadata

import click

from postroom import __version__
from postroom.cli import admin, demo, directory, fetching, outbox, profiles, routing, tickets, worker
from postroom.cli._common import PostroomGroup, command, database_option, state
from postroom.core.app import Postroom
from postroom.core.errors import UserError
from postroom.core.plugins import ENTRY_POINT_GROUP


@click.group(cls=PostroomGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="postroom")
@database_option
def cli() -> None:
    """postroom: the email channel of a contact centre.

    Fetches customers' mail, routes it onto tickets, and sends the agents' replies.
    """


@command(cli, "init")
def init_command() -> None:
    """Create or upgrade the database schema and the default contact centre (id 1)."""
    app = state().app(require_schema=False)
    app.init()
    click.echo(f"The postroom database is ready ({app.engine.url.render_as_string(hide_password=True)}).")


for module in (profiles, directory, routing, tickets, fetching, outbox, admin, worker, demo):
    module.register(cli)


def main() -> None:
    """Console-script entry point: adds the commands installed plugins provide, then runs."""
    if metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            Postroom().plugins.register_commands(cli)
        except UserError as error:  # a broken plugin must not prevent 'postroom plugins disable'
            click.echo(f"Warning: {error}", err=True)
    cli(prog_name="postroom")
