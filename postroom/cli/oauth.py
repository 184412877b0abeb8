"""``postroom oauth connect|status|disconnect``: a profile's OAuth2 sign-in with Microsoft or Google.

The sign-in itself is the provider plugin's (found through the plugin host, so a disabled
provider cannot be used); this module asks for the options, shows what the operator must do
(the device code, the browser address) and stores the grant. No secret is ever printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from postroom.cli._common import (
    PostroomGroup,
    audited,
    command,
    contact_center_id,
    echo,
    json_option,
    print_json,
    state,
)
from postroom.core.contract.errors import UserError
from postroom.core.data import oauth
from postroom.core.data.profiles import get_profile

FLOWS = ("client-credentials", "device-code", "installed-app", "service-account")
#: The flows that need a client secret (or, for a service account, its key file).
NEEDS_SECRET = {"client-credentials", "installed-app"}


@click.group("oauth", cls=PostroomGroup)
def oauth_group() -> None:
    """A profile's OAuth2 sign-in (Microsoft 365, Google Workspace / Gmail): connect, status, disconnect."""


def _read_secret(from_stdin: bool, key_file: Path | None, flow: str) -> str | None:
    if key_file is not None:
        try:
            return key_file.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"The service-account key file {str(key_file)!r} cannot be read: {error}.") from None
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UserError("--client-secret-stdin was given but standard input is empty.")
        return line
    if flow in NEEDS_SECRET:
        if not sys.stdin.isatty():
            raise UserError(f"The {flow} flow needs the client secret: give it with --client-secret-stdin.")
        return str(click.prompt("Client secret", hide_input=True))
    return None


def _say(line: str) -> None:
    echo(line)
    sys.stdout.flush()


@command(oauth_group, "connect")
@click.argument("profile_name", metavar="PROFILE")
@click.option("--provider", type=click.Choice(oauth.PROVIDERS), required=True, help="Who signs in: microsoft or google.")
@click.option("--flow", type=click.Choice(FLOWS), required=True, help="How: client-credentials, device-code (Microsoft); installed-app, service-account (Google).")
@click.option("--client-id", help="The application (client) id of the app registration or OAuth client (a service account's is read from its key).")
@click.option("--tenant", help="Microsoft: the directory (tenant) id or domain (device code without it: any work account).")
@click.option("--client-secret-stdin", is_flag=True, help="Read the client secret from one line of standard input (else it is prompted for).")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False), help="Google service account: its JSON key file (stored encrypted).")
@click.option("--account", help="The mailbox the tokens act for (service account: required; else the profile's user name).")
@click.option("--scope", "scopes", multiple=True, help="A scope to ask for (repeatable); the defaults suit the profile's protocols (IMAP, POP and SMTP, or Graph).")
@click.option("--authority", help="Another authorisation server (a national cloud, or a test stand-in): its base URL.")
@click.option("--ca-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="A CA bundle that verifies the authorisation server.")
@click.option("--open-browser", is_flag=True, help="installed-app: open the sign-in address in this computer's browser.")
@click.option("--loopback-port", type=click.IntRange(0, 65535), default=0, help="installed-app: the port on 127.0.0.1 the browser comes back to (default: any free one; fix it to forward it over SSH).")
def oauth_connect(
    profile_name: str,
    provider: str,
    flow: str,
    client_id: str | None,
    tenant: str | None,
    client_secret_stdin: bool,
    key_file: Path | None,
    account: str | None,
    scopes: tuple[str, ...],
    authority: str | None,
    ca_file: Path | None,
    open_browser: bool,
    loopback_port: int,
) -> None:
    """Sign PROFILE in with Microsoft or Google and keep the tokens (encrypted) for its servers."""
    app = state().app()
    cc = contact_center_id(app)
    with app.transaction() as session:
        profile = get_profile(session, profile_name, cc)
        username = profile.username
        protocols = frozenset({profile.fetch_protocol, profile.send_protocol})
    token_provider = oauth.token_provider(state().app().plugins, provider)
    token_provider.check_flow(flow)
    if flow == "service-account" and key_file is None and not client_secret_stdin:
        raise UserError("A service account signs in with its key: give --key-file (or the JSON on --client-secret-stdin).")
    secret = _read_secret(client_secret_stdin, key_file, flow)
    if client_id is None and flow == "service-account":
        client_id = oauth.service_account_client_id(secret)
    if not client_id:
        raise UserError(f"The {flow} flow needs the application's client id: give it with --client-id.")
    grant = token_provider.new_grant(
        profile_name=profile_name,
        flow=flow,
        scopes=list(scopes) or token_provider.default_scopes(flow, protocols),
        tenant=tenant,
        client_id=client_id,
        client_secret=secret,
        account=account or username,
        authority=authority,
        ca_file=str(ca_file.resolve()) if ca_file else None,
    )
    issued = token_provider.connect(grant, _say, open_browser=open_browser, loopback_port=loopback_port)
    new = oauth.NewGrant(
        provider=provider,
        flow=flow,
        scopes=grant.scopes,
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        tenant=tenant,
        client_id=client_id,
        client_secret=secret,
        refresh_token=issued.refresh_token,
        account=issued.account or grant.account,
        authority=authority,
        ca_file=grant.ca_file,
    )
    with app.transaction() as session:
        profile = get_profile(session, profile_name, cc)
        oauth.save_grant(session, profile, new)
        detail = {"provider": new.provider, "flow": new.flow, "account": new.account, "scopes": new.scopes}
        audited(session, "oauth.connect", profile_name, detail)
    who = f" as {new.account}" if new.account else ""
    echo(f"Profile {profile_name!r} is signed in with {provider} ({flow}){who}; its servers now get OAuth2 tokens.")


@command(oauth_group, "status")
@click.argument("profile_name", metavar="PROFILE")
@json_option
def oauth_status(profile_name: str, as_json: bool) -> None:
    """Show PROFILE's sign-in: provider, flow, who, scopes, token expiry, last refresh, last error."""
    app = state().app()
    with app.transaction() as session:
        profile = get_profile(session, profile_name, contact_center_id(app))
        grant = oauth.grant_of(session, profile)
        if grant is None:
            raise UserError(f"Profile {profile_name!r} has no OAuth2 sign-in; add one with 'postroom oauth connect'.")
        status = oauth.grant_status(grant)
    if as_json:
        print_json(status)
        return
    for key, value in status.items():
        if isinstance(value, list):
            value = " ".join(value)
        echo(f"{key.replace('_', ' ')}: {'-' if value is None or value == '' else value}")


@command(oauth_group, "disconnect")
@click.argument("profile_name", metavar="PROFILE")
def oauth_disconnect(profile_name: str) -> None:
    """Forget PROFILE's sign-in and its tokens; its servers get the stored password again."""
    app = state().app()
    with app.transaction() as session:
        profile = get_profile(session, profile_name, contact_center_id(app))
        if not oauth.delete_grant(session, profile):
            raise UserError(f"Profile {profile_name!r} has no OAuth2 sign-in.")
        audited(session, "oauth.disconnect", profile_name)
    echo(f"Profile {profile_name!r} is signed out; its tokens are deleted.")


def register(cli: click.Group) -> None:
    cli.add_command(oauth_group)
