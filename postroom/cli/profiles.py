"""``postroom profile ...``: email media profiles."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from postroom.cli._common import (
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
from postroom.core.contract.errors import UserError
from postroom.core.data import configuration, profiles
from postroom.core.data.idle_switch import set_idle
from postroom.core.data.models.profiles import OUTGOING_LOGINS
from postroom.core.data.profiles import ProfileFields
from postroom.core.plugin_host import PluginHost


@click.group("profile", cls=PostroomGroup)
def profile_group() -> None:
    """Email media profiles: a mailbox and its outgoing server."""


class ProtocolOption(click.Option):
    """``--fetch-protocol``/``--send-protocol``: the help lists the protocols installed and enabled
    now (an installed vendor's protocol too), read when help is shown, not when postroom was written."""

    def __init__(self, *args: Any, direction: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direction = direction

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = f"{', '.join(['none', *_installed_protocols(self.direction)])} (fixed after creation)."
        return super().get_help_record(ctx)


def _installed_protocols(direction: str) -> list[str]:
    """The enabled protocols that can ``direction`` (fetch or send), with the database's switches if it has any."""
    try:
        plugins = state().app(require_schema=False).plugins
    except Exception:  # help must show even where the database cannot be reached
        plugins = PluginHost()
    return sorted(
        name for name, cls in plugins.protocols.items() if (cls.CAN_FETCH if direction == "fetch" else cls.CAN_SEND)
    )


def _profile_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--username",
            help="Login name on the incoming server (and the outgoing one, outgoing login 'same').",
        ),
        click.option(
            "--password-stdin", is_flag=True, help="Read the password from one line of standard input."
        ),
        click.option(
            "--ask-password",
            is_flag=True,
            help="Prompt for the password, twice (the default of 'profile add' with --username at a terminal).",
        ),
        click.option("--send-from-name", help="Sender name on replies (at most 52 characters)."),
        click.option("--send-from-address", help="Sender address on replies."),
        click.option("--subject-prefix", help="Prefix of reply subjects, e.g. [ACME Support]."),
        click.option("--send-protocol", cls=ProtocolOption, direction="send"),
        click.option("--outgoing-host"),
        click.option("--outgoing-port", type=int),
        click.option(
            "--outgoing-folder", help="Folder that keeps a copy of each sent mail (fixed after creation)."
        ),
        click.option(
            "--outgoing-login",
            metavar="|".join(OUTGOING_LOGINS),
            help="How to log in to the outgoing server: same (the incoming login, the default), password "
            "(its own user and password), token (an access token from a plugin), none (a relay, no AUTH).",
        ),
        click.option(
            "--outgoing-username",
            help="Login name on the outgoing server (outgoing login 'password'; 'token': the mailbox).",
        ),
        click.option(
            "--outgoing-password-stdin",
            is_flag=True,
            help="Read the outgoing server's password from a line of standard input (after --password-stdin's).",
        ),
        click.option(
            "--ask-outgoing-password",
            is_flag=True,
            help="Prompt for the outgoing server's password, twice (the default with --outgoing-login "
            "password at a terminal).",
        ),
        click.option("--reply-to", help="Reply-To address of replies ('' switches Reply-To off)."),
        click.option(
            "--delete-on-fetch/--keep-on-fetch", default=None, help="Delete mail on the server once stored."
        ),
        click.option("--fetch-protocol", cls=ProtocolOption, direction="fetch"),
        click.option("--incoming-host"),
        click.option("--incoming-port", type=int),
        click.option("--incoming-folder", help="Folder to fetch from (fixed after creation)."),
        click.option("--fetch-interval", type=int, help="Seconds between fetches (default 10)."),
        click.option("--fetch-last-days", type=int, help="Fetch only mail of the last N days (0: all)."),
        click.option(
            "--tls-verify/--no-tls-verify", default=None, help="Verify TLS certificates (default on)."
        ),
        click.option(
            "--allow-plaintext-login/--no-allow-plaintext-login",
            default=None,
            help="Log in even where the server offers no STARTTLS, sending the password unencrypted (default off).",
        ),
        click.option(
            "--idle/--no-idle",
            default=None,
            help="Let the worker watch the mailbox for new mail (IMAP IDLE) between polls (default on).",
        ),
        click.option("--incoming/--no-incoming", "incoming_allowed", default=None, help="Allow fetching."),
        click.option("--outgoing/--no-outgoing", "outgoing_allowed", default=None, help="Allow sending."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _read_password(from_stdin: bool, ask: bool, whose: str = "", option: str = "") -> str | None:
    """A password from a line of standard input or typed twice at a terminal; ``whose`` and ``option``
    name the outgoing server's (``"Outgoing "``, ``"outgoing-"``) in prompts and sentences."""
    stdin_option, ask_option = f"--{option}password-stdin", f"--ask-{option}password"
    if from_stdin:
        # Bytes, decoded here: a text stream would hand on what is not UTF-8 as lone surrogates.
        line = sys.stdin.buffer.readline()
        if not line:
            raise UserError(f"{stdin_option} was given but standard input has no line for it.")
        try:
            return line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UserError(f"The password on standard input ({stdin_option}) is not valid UTF-8.") from None
    if ask:
        label = f"{whose}password" if whose else "Password"
        try:
            first = click.prompt(label, hide_input=True, default="", show_default=False)
            second = click.prompt(f"Confirm {label.lower()}", hide_input=True, default="", show_default=False)
        except click.Abort:
            if sys.stdin.isatty():  # the operator pressed Ctrl-C or Ctrl-D: click's "Aborted!"
                raise
            raise UserError(
                f"{ask_option} found no terminal to type the password in and standard input ended; "
                f"give the password with {stdin_option} instead."
            ) from None
        if first != second:
            raise UserError(f"The {label.lower()} and its confirmation do not match.")
        return str(first)
    return None


def _fields(options: dict[str, Any], creating: bool = False) -> ProfileFields:
    """The given options as profile fields; a new profile with a login, typed at a terminal, is asked
    for its password (twice) unless one of the password options says where it comes from. The same
    goes for the outgoing server's password when ``--outgoing-login password`` is given; with both
    ``--password-stdin`` and ``--outgoing-password-stdin``, the first line is the incoming password."""
    ask = options.pop("ask_password") or (
        creating and bool(options.get("username")) and not options["password_stdin"] and sys.stdin.isatty()
    )
    password = _read_password(options.pop("password_stdin"), ask)
    from_stdin = options.pop("outgoing_password_stdin")
    ask_outgoing = options.pop("ask_outgoing_password") or (
        options.get("outgoing_login") == "password" and not from_stdin and sys.stdin.isatty()
    )
    outgoing_password = _read_password(from_stdin, ask_outgoing, "Outgoing ", "outgoing-")
    return ProfileFields(password=password, outgoing_password=outgoing_password, **options)


@command(profile_group, "add")
@click.argument("name")
@click.option("--resolver", "resolvers", multiple=True, help="A ticket resolver; repeat, in priority order.")
@_profile_options
def add_profile(name: str, resolvers: tuple[str, ...], **options: Any) -> None:
    """Register a new email media profile."""
    app = state().app()
    cc = contact_center_id(app)
    idle = options.pop("idle")
    values = _fields(options, creating=True)
    with app.transaction() as session:
        profile = profiles.create_profile(session, app.plugins, cc, name, values)
        if idle is not None:
            set_idle(session, profile, idle)
        if resolvers:
            profiles.set_resolvers(session, app.plugins, profile, list(resolvers))
        detail = {**values.audit_detail(), "idle": idle, "resolvers": list(resolvers)}
        audited(session, "profile.add", name, detail)
        profile_id = profile.id
    echo(f"Created profile {name!r} (id {profile_id}).")


@command(profile_group, "modify")
@click.argument("name")
@_profile_options
def modify_profile(name: str, **options: Any) -> None:
    """Change a profile; protocols and folders are fixed after creation."""
    app = state().app()
    cc = contact_center_id(app)
    idle = options.pop("idle")
    values = _fields(options)
    with app.transaction() as session:
        profile = profiles.get_profile(session, name, cc)
        profiles.modify_profile(session, app.plugins, profile, values)
        if idle is not None:
            set_idle(session, profile, idle)
        detail = values.audit_detail() | ({} if idle is None else {"idle": idle})
        audited(session, "profile.modify", name, detail)
    echo(f"Updated profile {name!r}.")


@command(profile_group, "list")
@json_option
def list_profiles(as_json: bool) -> None:
    """List the media profiles."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        documents = [profiles.profile_as_json(p) for p in profiles.live_profiles(session, cc)]
    if as_json:
        print_json(documents)
        return
    print_table(
        ["id", "name", "fetch", "send", "interval", "resolvers", "status", "last error"],
        [
            [
                d["id"],
                d["name"],
                d["fetch_protocol"],
                d["send_protocol"],
                d["fetch_interval"],
                ",".join(d["resolvers"]),
                d["status"],
                d["last_error"],
            ]
            for d in documents
        ],
        empty="No media profiles yet; add one with 'postroom profile add'.",
    )


@command(profile_group, "show")
@click.argument("name")
@json_option
def show_profile(name: str, as_json: bool) -> None:
    """Show one profile, with a preview of a reply's subject."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        document = profiles.profile_details(session, profiles.get_profile(session, name, cc))
    if as_json:
        print_json(document)
        return
    warnings = document.pop("warnings")
    width = max(len(k) for k in document)
    for key, value in document.items():
        if isinstance(value, list):
            shown: object = ", ".join(value)
        elif isinstance(value, dict):
            shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
        else:
            shown = value
        echo(f"{key.replace('_', ' ').ljust(width)}  {'' if shown is None else shown}")
    for warning in warnings:
        echo(f"Warning: {warning}")


@command(profile_group, "delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_profile(name: str, yes: bool) -> None:
    """Delete a profile. This cannot be undone; its tickets and messages stay."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        profiles.get_profile(session, name, cc)
    if not yes and not click.confirm(
        f"Delete profile {name!r}? This cannot be undone: campaigns, queues and agents lose it and its "
        "routing rules are disabled (tickets and messages stay).",
        default=False,
    ):
        raise UserError("Nothing was deleted.")
    with app.transaction() as session:
        profile = profiles.get_profile(session, name, cc)
        profiles.delete_profile(session, profile)
        audited(session, "profile.delete", name, {"id": profile.id})
    echo(f"Deleted profile {name!r}.")


@command(profile_group, "resolvers")
@click.argument("name")
@click.argument("resolvers", nargs=-1, required=True)
def set_resolvers(name: str, resolvers: tuple[str, ...]) -> None:
    """Set the ordered list of ticket resolvers of a profile."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        profile = profiles.get_profile(session, name, cc)
        before = [r.resolver_name for r in profile.resolvers]
        profiles.set_resolvers(session, app.plugins, profile, list(resolvers))
        audited(session, "resolver.reorder", name, {"before": before, "after": list(resolvers)})
    echo(f"Profile {name!r} resolves tickets with: {', '.join(resolvers)}.")


@command(profile_group, "signature")
@click.argument("name")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--before-quoted", "position", flag_value="before", help="Place it before the quoted text.")
@click.option("--after-quoted", "position", flag_value="after", help="Place it after the quoted text.")
def set_signature(name: str, path: Path, position: str | None) -> None:
    """Set a profile's HTML signature (sanitised; placeholders such as {agent_name} are filled)."""
    try:
        html = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"The signature file {str(path)!r} cannot be read: {error}.") from error
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        profile = profiles.get_profile(session, name, cc)
        profiles.set_signature(profile, html, position)
        detail = {"position": profile.signature_position, "characters": len(profile.signature_html or "")}
        audited(session, "profile.signature", name, detail)
    echo(f"Signature of profile {name!r} saved.")


@command(profile_group, "retry")
@click.argument("name")
@click.option("--max-retry-count", type=int)
@click.option("--rate-limit-retry-time", type=int, help="Seconds.")
@click.option("--progressive-retry-interval", type=int, help="Seconds.")
def set_retry(name: str, **values: int | None) -> None:
    """Set a profile's retry variables (media_profile_configuration)."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        settings = configuration.set_retry_settings(
            session, profiles.get_profile(session, name, cc), **values
        )
        audited(session, "retry.variables", name, {k: v for k, v in values.items() if v is not None})
    echo(
        f"Profile {name!r}: maxRetryCount={settings.max_retry_count}, "
        f"rateLimitRetryTime={settings.rate_limit_retry_time}s, "
        f"progressiveRetryInterval={settings.progressive_retry_interval}s "
        "(running workers use them after 'postroom reload')."
    )


def register(cli: click.Group) -> None:
    cli.add_command(profile_group)
