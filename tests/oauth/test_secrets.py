"""Secrets stay secret: no client secret, refresh token or access token in any log line or in
``oauth status``, even with every logger (MSAL's, requests', postroom's) at DEBUG; and the provider
libraries are not loaded by a process whose profiles do not use them."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile
from postroom.core.data.secrets import decrypt_password
from tests.oauth.conftest import authority_options
from tests.oauth.grants import seed_device_code_grant
from tests.oauth.test_microsoft import _grant, _mail_profile
from tests.servers.oauth_mail import OAuthDovecot, OAuthSmtp
from tests.servers.oauth_server import OAuthServer
from tests.support.cli import Cli


def test_no_secret_or_token_in_logs_or_status(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot,
    oauth_smtp: OAuthSmtp, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer = oauth_server.issuer
    app_client, user_client = issuer.register_client(), issuer.register_client(public=True)
    user, _ = oauth_dovecot.new_user("quiet")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user, name="app")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user, name="person")
    shown = postroom_cli.ok(
        "oauth", "connect", "app", "--provider", "microsoft", "--flow", "client-credentials",
        "--client-id", app_client.client_id, "--tenant", app_client.tenant, "--client-secret-stdin",
        *authority_options(oauth_server), input=f"{app_client.secret}\n",
    ).stdout
    first = seed_device_code_grant(database_url, "person", oauth_server, user_client, user, expires_in=0)
    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            person = session.scalars(select(MediaProfile).where(MediaProfile.name == "person")).one()
            refreshed = app.plugins.access_token(person)  # MSAL redeems the refresh token, logging at DEBUG
    finally:
        app.dispose()
    assert refreshed is not None and issuer.refreshes(user_client.client_id)
    for name in ("app", "person"):
        shown += postroom_cli.ok("oauth", "status", name).stdout + postroom_cli.ok("oauth", "status", name, "--json").stdout
    rotated = decrypt_password(_grant(database_url, "person").refresh_token_encrypted)
    app_token = decrypt_password(_grant(database_url, "app").access_token_encrypted)

    secrets = [app_client.secret, app_token, first["access_token"], first["refresh_token"], refreshed, rotated]
    assert all(secrets) and any("msal" in record.name for record in caplog.records)
    logged = caplog.text
    for secret in secrets:
        assert secret is not None
        assert secret not in logged and secret not in shown
        assert secret[:24] not in logged  # not even a prefix (a token cut to fit a line)


def test_an_idle_worker_does_not_load_the_provider_libraries() -> None:
    """The plugins are registered, but MSAL and the Google libraries come in only when a token is asked for."""
    code = (
        "import sys\n"
        "from postroom.core.plugin_host import PluginHost\n"
        "host = PluginHost()\n"
        "assert host.plugin('microsoft') is not None and host.plugin('google') is not None\n"
        "loaded = [m for m in ('msal', 'google.auth', 'google_auth_oauthlib', 'jwt', 'requests_oauthlib') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
