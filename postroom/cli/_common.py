"""What every command shares: the database option, the application object, errors, JSON and tables.

Every human-readable line goes out through :func:`echo` or :func:`print_table`, which show control
characters as escapes (see :mod:`postroom.cli._text`); JSON escapes them itself.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from postroom.cli._text import columns, json_visible, one_line, pad, visible
from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError
from postroom.core.data import audit
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, check_contact_center
from postroom.core.data.validation import DEFAULT_PARSE_TIME_LIMIT, PARSE_TIME_LIMIT

#: The largest id a row can have: both databases store ids as signed 64-bit integers.
MAX_ID = 2**63 - 1

#: The type of every id argument and option: a bigger number is refused before it reaches a database.
ROW_ID = click.IntRange(min=1, max=MAX_ID)


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for human-readable output: control characters of the data shown as escapes
    (newlines and tabs kept, so that a message may span lines)."""
    click.echo(visible(str(message), keep="\n\t"), err=err, nl=nl)


class CliState:
    """Per-invocation state: the database URL given anywhere on the line, and the app built from it."""

    def __init__(self) -> None:
        self.database_url: str | None = None
        self.contact_center: int = DEFAULT_CONTACT_CENTER_ID
        self._app: Postroom | None = None

    def app(self, require_schema: bool = True) -> Postroom:
        if self._app is None:
            self._app = Postroom(self.database_url, start_plugins=True)
        if require_schema:
            self._app.require_schema()
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.dispose()


def state() -> CliState:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def _set_database_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        state().database_url = value


def _set_contact_center(ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    if value is not None:
        state().contact_center = value


database_option = click.option(
    "--database-url",
    envvar="POSTROOM_DATABASE_URL",
    expose_value=False,
    is_eager=True,
    callback=_set_database_url,
    help="SQLAlchemy URL of the database (default: SQLite in $POSTROOM_HOME).",
)
contact_center_option = click.option(
    "--contact-center",
    type=ROW_ID,
    expose_value=False,
    callback=_set_contact_center,
    help="The contact centre to act in (default 1).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document and nothing else."
)
#: ``fetch`` and ``run``: the time limit on parsing one mail (checked by the core, in one sentence).
parse_time_limit_option = click.option(
    "--parse-time-limit",
    type=float,
    default=DEFAULT_PARSE_TIME_LIMIT,
    show_default=True,
    help=f"Seconds one mail may take to parse ({PARSE_TIME_LIMIT.low:g} to {PARSE_TIME_LIMIT.high:g});"
    " a slower mail is quarantined and the fetch goes on.",
)


def command(
    group: click.Group | None, name: str | None = None, **kwargs: Any
) -> Callable[[Callable[..., Any]], click.Command]:
    """A command (of ``group``, if given) taking ``--database-url`` and ``--contact-center``."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        wrapped = contact_center_option(database_option(function))
        kwargs.setdefault("cls", PostroomCommand)
        make = group.command(name, **kwargs) if group is not None else click.command(name, **kwargs)
        return make(wrapped)

    return decorate


def audited(session: Session, action: str, target: object, detail: dict[str, Any] | None = None) -> None:
    """Record a configuration change made on the command line, in the change's own transaction.

    The one place the CLI writes the audit log (issue 13): the actor is ``audit.cli_actor()``, the
    action is the console's name for the same change (``profile.modify``, ``rule.add``, ...), and
    ``detail`` never holds a password, a token or a client secret.
    """
    audit.record(session, audit.cli_actor(), action, str(target), detail)


def contact_center_id(app: Postroom) -> int:
    """The chosen contact centre, checked to exist."""
    cc = state().contact_center
    with app.transaction() as session:
        check_contact_center(session, cc)
    return cc


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(document: object) -> None:
    click.echo(json_visible(json.dumps(document, indent=2, default=_json_default, ensure_ascii=False)))


_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str = "Nothing to show."
) -> None:
    """A plain aligned text table; cells are cut at 48 terminal columns so rows stay on one line."""
    if not rows:
        echo(empty)
        return

    def cell(value: object) -> str:
        if isinstance(value, str) and _ISO_TIME.match(value):
            value = datetime.fromisoformat(value)
        text = (
            ""
            if value is None
            else (
                value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                if isinstance(value, datetime)
                else str(value)
            )
        )
        return one_line(text, 48)

    cells = [[cell(v) for v in row] for row in rows]
    # Widths in terminal columns, not characters: a CJK character takes two (cli/_text.columns).
    widths = [max(columns(h), *(columns(r[i]) for r in cells)) for i, h in enumerate(headers)]
    echo("  ".join(pad(h.upper(), w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        echo("  ".join(pad(v, w) for v, w in zip(row, widths, strict=True)).rstrip())


def error_url() -> str:
    """The database URL for an error message, with any password hidden."""
    url = state().database_url
    if not url:
        return "the default SQLite database"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the configured database"


def fail(message: str) -> None:
    echo(f"Error: {message}", err=True)
    sys.exit(1)


def _undecodable(value: object) -> str | None:
    """The first text in ``value`` (a parameter's value) holding bytes that were not UTF-8, if any."""
    texts = value if isinstance(value, tuple | list) else (value,)
    for text in texts:
        if isinstance(text, str | PurePath) and re.search("[\udc80-\udcff]", str(text)):
            return str(text)
    return None


class PostroomCommand(click.Command):
    """A command that refuses, naming the option, an argument that was not UTF-8 (Python hands such
    bytes on as lone surrogates, which no database, mail or terminal takes)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.get_params(ctx):
            if param.name is not None and (text := _undecodable(ctx.params.get(param.name))):
                raise click.BadParameter(
                    f"'{visible(text)}' is not valid UTF-8; postroom takes names, text and paths in UTF-8 only.",
                    ctx=ctx,
                    param=param,
                )
        return rest


class PostroomGroup(click.Group):
    """Turns a user's mistake into one sentence on stderr and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as error:
            fail(str(error))
        except OperationalError as error:
            url = error_url()
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            fail(f"The database ({url}) could not be used: {reason}.")
        except SQLAlchemyError as error:
            fail(f"The database refused the operation: {str(error).splitlines()[0]}")
        except UnicodeEncodeError as error:  # the last net: bytes that were not UTF-8 from anywhere else
            bad = visible(error.object[error.start : error.end]) if isinstance(error.object, str) else "?"
            fail(f"Some text given to postroom is not valid UTF-8 (it holds {bad}); give it in UTF-8.")
        finally:
            if ctx.parent is None and isinstance(ctx.obj, CliState):
                ctx.obj.close()
        return None
