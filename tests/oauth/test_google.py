"""The ``google`` provider against the OAuth2 stand-in: the installed-app flow with its loopback redirect
driven by the test as a browser would, and a service account with domain-wide delegation; the
tokens fetch mail over IMAP XOAUTH2 from a real Dovecot that introspects them at the stand-in.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from postroom.core.app import Postroom
from tests.oauth.conftest import SignIn, authority_options
from tests.oauth.test_microsoft import _grant, _mail_profile
from tests.servers.oauth_mail import OAuthDovecot, OAuthSmtp
from tests.servers.oauth_server import OAuthServer
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import make_mail


def _browser_get(url: str) -> str:
    """The request a browser makes when the sign-in page sends it back to the loopback address."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        return str(response.read().decode())


def test_installed_app_sign_in_fetches_over_imap_xoauth2(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot, oauth_smtp: OAuthSmtp
) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client(tenant="google")
    user, _ = oauth_dovecot.new_user("gmail")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    app = Postroom(database_url)
    Desk(app).route("support")
    app.dispose()
    oauth_dovecot.deliver(user, make_mail("Refund please", sender="Carla <carla@example.org>"))

    sign_in = SignIn(
        database_url, "support", "--provider", "google", "--flow", "installed-app",
        "--client-id", client.client_id, "--client-secret-stdin", *authority_options(oauth_server),
        secret=client.secret,
    )
    address = sign_in.wait_for(r"open this address in a browser: (\S+)").group(1)
    assert address.startswith(f"{oauth_server.url}/o/oauth2/auth?")
    assert "code_challenge_method=S256" in address and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in address
    # The person signs in; the stand-in sends the browser back to postroom's loopback address.
    page = _browser_get(issuer.sign_in(address, user))
    assert "signed in" in page
    assert f"signed in with google (installed-app) as {user}" in sign_in.finish()
    # The code was redeemed with the PKCE verifier and the same redirect address (the stand-in checks both).
    assert issuer.count(client.client_id, "authorization_code") == 1
    grant = _grant(database_url)
    assert grant.refresh_token_encrypted is not None and grant.scopes == "https://mail.google.com/"

    fetched = postroom_cli.ok("fetch", "--json").json()
    assert fetched[0]["stored"] == 1 and fetched[0]["error"] is None, fetched
    assert oauth_dovecot.count(user) == 0


def test_service_account_with_domain_wide_delegation_acts_as_the_mailbox(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot,
    oauth_smtp: OAuthSmtp, tmp_path: Path,
) -> None:
    issuer = oauth_server.issuer
    key = issuer.register_service_account()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(key))
    user, _ = oauth_dovecot.new_user("workspace")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    oauth_dovecot.deliver(user, make_mail("Invoice", sender="Carla <carla@example.org>"))

    postroom_cli.ok(
        "oauth", "connect", "support", "--provider", "google", "--flow", "service-account",
        "--key-file", str(key_file), "--account", user,
        *authority_options(oauth_server),
    )
    assert issuer.count(key["client_email"], "jwt_bearer") == 1
    fetched = postroom_cli.ok("fetch", "--json").json()
    assert fetched[0]["stored"] == 1 and fetched[0]["error"] is None, fetched
    status = postroom_cli.ok("oauth", "status", "support", "--json").json()
    assert status["account"] == user and status["client_id"] == key["client_id"] and status["has_client_secret"] is True
    assert "PRIVATE KEY" not in json.dumps(status)
    grant = _grant(database_url)
    assert b"PRIVATE KEY" not in (grant.client_secret_encrypted or b"")
