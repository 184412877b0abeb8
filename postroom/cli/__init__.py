"""The ``postroom`` command line: parses, calls the core services, prints. No logic lives here.

A command's module is imported only when that command runs (or help lists them all), so that
``postroom send`` in a cron job does not pay for importing the worker, the fetcher and the demo.
"""

from __future__ import annotations

import importlib
import io
import sys
from importlib import metadata
from typing import Any

import click

from postroom import __version__
from postroom.cli._common import PostroomGroup, command, database_option, echo, state
from postroom.core.contract.errors import UserError
from postroom.core.plugin_host import ENTRY_POINT_GROUP

#: The modules of ``postroom.cli`` that define each top-level command; each has ``register(cli)``.
#: ``ticket`` and ``profile`` need two: the outbound module adds ``ticket reply``, the inbound one ``profile test``.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "profile": ("profiles", "inbound"),
    "campaign": ("directory",),
    "queue": ("directory",),
    "agent": ("directory",),
    "customer": ("directory",),
    "rule": ("rules",),
    "ticket": ("tickets", "outbound"),
    "fetch": ("inbound",),
    "unrouted": ("inbound",),
    "quarantine": ("inbound",),
    "send": ("outbound",),
    "outbox": ("outbound",),
    "failures": ("outbound",),
    "config": ("configuration",),
    "retry": ("retry",),
    "plugins": ("configuration",),
    "reload": ("configuration",),
    "run": ("worker",),
    "admin": ("worker",),
    "demo": ("demo",),
    "oauth": ("oauth",),
    "bounce": ("bounces",),
    "web": ("web",),
}


class RootGroup(PostroomGroup):
    """The ``postroom`` group: builtin commands imported on first use, plugin commands looked up last.

    Plugin commands come from the plugins enabled in the database the command line names, and
    are kept per invocation, so a plugin switched off is gone from the next command on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registered: set[str] = set()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._import(*COMMAND_MODULES.get(cmd_name, ()))
        found = super().get_command(ctx, cmd_name)
        return found if found is not None else _plugin_commands(ctx).get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._import(*{module for modules in COMMAND_MODULES.values() for module in modules})
        return sorted({*super().list_commands(ctx), *_plugin_commands(ctx)})

    def _import(self, *modules: str) -> None:
        for name in modules:
            if name not in self._registered:
                importlib.import_module(f"{__name__}.{name}").register(self)
                self._registered.add(name)


def _plugin_commands(ctx: click.Context) -> dict[str, click.Command]:
    """The commands the enabled installed plugins add (none when no plugin is installed)."""
    root = ctx.find_root()
    if "postroom.plugin_commands" not in root.meta:
        holder = click.Group()
        if metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                state().app(require_schema=False).plugins.register_commands(holder)
            except UserError as error:  # a broken plugin must not prevent 'postroom plugins disable'
                echo(f"Warning: {error}", err=True)
        root.meta["postroom.plugin_commands"] = holder.commands
    commands: dict[str, click.Command] = root.meta["postroom.plugin_commands"]
    return commands


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    echo(f"The postroom database is ready ({app.engine.url.render_as_string(hide_password=True)}).")


def main() -> None:
    """Console-script entry point. Click's own messages (a bad option, an unknown command) quote
    what was typed, so they too go out through :func:`echo`, control characters shown as escapes."""
    try:
        code = cli.main(prog_name="postroom", standalone_mode=False)
    except click.ClickException as error:
        message = io.StringIO()
        error.show(file=message)
        echo(message.getvalue(), err=True, nl=False)
        sys.exit(error.exit_code)
    except click.Abort:
        echo("Aborted!", err=True)
        sys.exit(1)
    # standalone_mode=False hands back what a command returned, or the code of ctx.exit(): 0 when none.
    sys.exit(code if isinstance(code, int) else 0)
