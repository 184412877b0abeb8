"""``postroom web``: serve the operator's console; ``postroom web user ...``: its accounts.

The web stack (Flask, waitress) is imported inside the functions that need it, never at the top of
this module: ``postroom --help`` imports every command module, and the worker must not carry Flask.
"""

from __future__ import annotations

import sys

import click

from postroom.cli._common import (
    PostroomGroup,
    command,
    contact_center_id,
    database_option,
    echo,
    json_option,
    print_json,
    print_table,
    state,
)
from postroom.core.contract.errors import UserError
from postroom.core.data import audit, web_accounts
from postroom.core.data.models import WebRole

DEFAULT_LISTEN = "127.0.0.1:8080"


def listen_address(value: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT`` as (host, port); the host defaults to 127.0.0.1, and
    port 0 means any free port (the one chosen is printed)."""
    host, _, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not port.isdigit() or (":" in host and not bracketed):
        raise UserError(f"--listen takes [HOST:]PORT (an IPv6 host in brackets), not {value!r}.")
    number = int(port)
    if not 0 <= number <= 65535:
        raise UserError(f"The console's port must be between 0 (any free port) and 65535, not {number}.")
    return host or "127.0.0.1", number


@click.group("web", cls=PostroomGroup, invoke_without_command=True)
@database_option
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, help="[HOST:]PORT to serve the console on."
)
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Send the session cookie over HTTPS only (set it when the console is reached through HTTPS).",
)
@click.pass_context
def web_group(ctx: click.Context, listen: str, secure_cookies: bool) -> None:
    """Serve the operator's console (pages for operators and agents) on --listen.

    Create the first operator with 'postroom web user add NAME --role operator'.
    """
    if ctx.invoked_subcommand is None:
        serve(listen_address(listen), secure_cookies)


def serve(address: tuple[str, int], secure_cookies: bool) -> None:
    """Serve until interrupted. The session key is made once and kept encrypted in the database."""
    from postroom.web.app import create_app
    from postroom.web.server import make_server

    app = state().app()
    with app.transaction() as session:
        key = web_accounts.session_key(session)
        accounts = len(web_accounts.list_users(session))
    flask_app = create_app(app, secret_key=key, secure_cookies=secure_cookies)
    host, port = address
    try:
        server = make_server(flask_app, host, port)
    except OSError as error:
        raise UserError(f"The console cannot listen on {host}:{port}: {error.strerror or error}.") from error
    shown = f"[{host}]" if ":" in host else host
    echo(f"postroom web: serving the console on http://{shown}:{server.effective_port}/ (Ctrl-C stops).")
    if not accounts:
        echo(
            "No console account yet: create the first operator with 'postroom web user add NAME --role operator'."
        )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@web_group.group("user", cls=PostroomGroup)
def user_group() -> None:
    """The console's accounts (every change is recorded in the audit log)."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    text: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return text


password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of standard input."
)


@command(user_group, "add")
@click.argument("name")
@click.option(
    "--role", required=True, help="'operator' (administers everything) or 'agent' (their queues only)."
)
@click.option(
    "--queue", "queues", multiple=True, help="A queue an agent works, as CAMPAIGN/QUEUE (repeatable)."
)
@password_stdin_option
def add_user(name: str, role: str, queues: tuple[str, ...], password_stdin: bool) -> None:
    """Add a console account; the password is asked for (or read with --password-stdin)."""
    from postroom.web import users

    app = state().app()
    cc = contact_center_id(app)
    # Everything but the password is checked first, so a mistake is not found after typing it twice.
    web_accounts.check_name(name)
    if web_accounts.check_role(role) is WebRole.OPERATOR and queues:
        raise UserError("An operator sees every queue; give --queue to agents only.")
    with app.transaction() as session:
        if web_accounts.find_user(session, name.strip()):
            raise UserError(f"A console account named {name.strip()!r} already exists.")
        for spec in queues:
            web_accounts.find_queue(session, cc, spec)
    password = users.check_password(_password(password_stdin))
    with app.transaction() as session:
        user = users.create_user(session, audit.cli_actor(), name, password, role, list(queues), cc)
        shown, user_id = user.name, user.id
    echo(f"Created console account {shown!r} ({role}, id {user_id}).")


@command(user_group, "passwd")
@click.argument("name")
@password_stdin_option
def set_password(name: str, password_stdin: bool) -> None:
    """Set a console account's password (its open sessions end)."""
    from postroom.web import users

    app = state().app()
    with app.transaction() as session:
        web_accounts.get_user(session, name)
    password = users.check_password(_password(password_stdin))
    with app.transaction() as session:
        users.set_password(session, audit.cli_actor(), name, password)
    echo(f"Changed the password of console account {name!r}.")


@command(user_group, "remove")
@click.argument("name")
def remove_user(name: str) -> None:
    """Remove a console account (its open sessions end)."""
    from postroom.web import users

    app = state().app()
    with app.transaction() as session:
        users.remove_user(session, audit.cli_actor(), name)
    echo(f"Removed console account {name!r}.")


def _switch_user(name: str, disabled: bool) -> None:
    from postroom.web import users

    app = state().app()
    with app.transaction() as session:
        changed = users.set_disabled(session, audit.cli_actor(), name, disabled)
    word = "disabled" if disabled else "enabled"
    if not changed:
        echo(f"Console account {name!r} was {word} already.")
    elif disabled:
        echo(f"Disabled console account {name!r}: its sessions have ended and it cannot sign in.")
    else:
        echo(f"Enabled console account {name!r}: it can sign in again.")


@command(user_group, "disable")
@click.argument("name")
def disable_user(name: str) -> None:
    """Disable a console account: its open sessions end and it cannot sign in (it is kept)."""
    _switch_user(name, True)


@command(user_group, "enable")
@click.argument("name")
def enable_user(name: str) -> None:
    """Enable a disabled console account again."""
    _switch_user(name, False)


@command(user_group, "list")
@json_option
def list_users(as_json: bool) -> None:
    """List the console accounts with their roles and queues."""
    app = state().app()
    with app.transaction() as session:
        accounts = web_accounts.list_users(session)
        queues = [[f"{q.campaign.name}/{q.name}" for q in u.queues] for u in accounts]
        documents = [
            {
                "id": u.id,
                "name": u.name,
                "role": u.role,
                "queues": names,
                "created_at": u.created_at,
                "disabled": u.disabled,
            }
            for u, names in zip(accounts, queues, strict=True)
        ]
        rows = [
            [u.name, u.role + (" (disabled)" if u.disabled else ""), ", ".join(names), u.created_at]
            for u, names in zip(accounts, queues, strict=True)
        ]
    if as_json:
        print_json(documents)
        return
    print_table(
        ["name", "role", "queues", "created"],
        rows,
        empty="No console accounts yet; add one with 'postroom web user add NAME --role operator'.",
    )


def register(cli: click.Group) -> None:
    cli.add_command(web_group)
