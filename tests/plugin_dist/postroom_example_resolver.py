"""An external postroom plugin, installed by the test command: the plugin author's quickstart, for real.

It adds the resolver ``newest-open`` (attach every mail to the campaign's most recently active
open ticket) and the command ``postroom example-hello``.
"""

from __future__ import annotations

import click
from sqlalchemy import select

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.data.models import Ticket


class NewestOpenTicket(ResolverPlugin):
    NAME = "newest-open"
    LABEL = "Single ticket: the campaign's most recently active open ticket"

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        return context.session.scalar(
            select(Ticket)
            .where(Ticket.campaign_id == context.campaign_id, Ticket.state == "open")
            .order_by(Ticket.last_activity_at.desc())
            .limit(1)
        )


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    return [NewestOpenTicket]


@hookimpl
def postroom_register_commands(cli: click.Group) -> None:
    @cli.command("example-hello")
    def example_hello() -> None:
        """Say hello from the example plugin."""
        click.echo("hello from postroom-example-resolver")
