"""The ``microsoft`` provider against the OAuth2 stand-in, and its tokens at a real Dovecot and an SMTP server.

The identity platform is a stand-in (tests/servers/oauth_server.py); Dovecot is real and checks
each XOAUTH2 token by introspection at the stand-in; the SMTP server checks it with the stand-in's
key. MSAL itself runs unchanged, pointed at the stand-in.
"""

from __future__ import annotations

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile, Message, OAuthGrant
from postroom.core.data.secrets import decrypt_password
from tests.oauth.conftest import SignIn, authority_options
from tests.servers.oauth_mail import OAuthDovecot, OAuthSmtp
from tests.servers.oauth_server import OAuthServer
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import make_mail


def _mail_profile(cli: Cli, dovecot: OAuthDovecot, smtp: OAuthSmtp, user: str, name: str = "support") -> None:
    """A profile on ``user``'s mailbox with NO password: it can only log in with a token."""
    cli.ok(
        "profile", "add", name, "--username", user,
        "--fetch-protocol", "imap", "--incoming-host", dovecot.host, "--incoming-port", str(dovecot.imap_port),
        "--send-protocol", "smtp", "--outgoing-host", smtp.host, "--outgoing-port", str(smtp.port),
        "--send-from-address", user, "--no-tls-verify", "--incoming", "--outgoing", "--delete-on-fetch",
    )


def _grant(database_url: str, name: str = "support") -> OAuthGrant:
    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            profile = session.scalars(select(MediaProfile).where(MediaProfile.name == name)).one()
            grant = session.scalars(select(OAuthGrant).where(OAuthGrant.media_profile_id == profile.id)).one()
            session.expunge(grant)
            return grant
    finally:
        app.dispose()


def test_device_code_token_reaches_the_mailbox_by_imap_and_smtp_xoauth2(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot, oauth_smtp: OAuthSmtp
) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client(public=True)
    user, _password = oauth_dovecot.new_user("dc")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    app = Postroom(database_url)
    Desk(app).route("support")
    oauth_dovecot.deliver(user, make_mail("Where is my parcel?", sender="Carla <carla@example.org>"))

    sign_in = SignIn(
        database_url, "support", "--provider", "microsoft", "--flow", "device-code",
        "--client-id", client.client_id, "--tenant", client.tenant, *authority_options(oauth_server),
    )
    code = sign_in.wait_for(r"open (\S+) and enter the code (\w+)")
    assert code.group(1) == f"{oauth_server.url}/devicelogin"
    issuer.approve(code.group(2), user)
    assert f"signed in with microsoft (device-code) as {user}" in sign_in.finish()
    assert issuer.count(client.client_id, "device_code") == 1

    introspected = issuer.introspections
    fetched = postroom_cli.ok("fetch", "--json").json()
    assert fetched[0]["stored"] == 1, fetched
    assert issuer.introspections > introspected  # Dovecot asked the stand-in about the token
    assert oauth_dovecot.count(user) == 0  # delete-on-fetch, after the commit

    with app.sessions() as session:
        ticket_id = session.scalars(select(Message.ticket_id)).one()
    postroom_cli.ok("ticket", "reply", str(ticket_id), "--body", "It ships today.")
    sent_before = len(oauth_smtp.mails)
    postroom_cli.ok("send")
    assert len(oauth_smtp.mails) == sent_before + 1, postroom_cli.ok("outbox", "list", "--json").stdout
    login, raw = oauth_smtp.mails[-1]
    assert login == user and b"It ships today." in raw
    token = decrypt_password(_grant(database_url).access_token_encrypted)
    assert oauth_smtp.tokens[-1] == token
    claims = oauth_server.verify(token or "")
    assert claims is not None and claims["upn"] == user and "SMTP.Send" in claims["scp"]
    # The cached token served the fetch and the send: no second token was asked for.
    assert issuer.count(client.client_id) == 1
    app.dispose()


def test_client_credentials_token_is_cached_and_status_shows_no_secret(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_smtp: OAuthSmtp, oauth_dovecot: OAuthDovecot
) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client()
    user, _ = oauth_dovecot.new_user("cc")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    result = postroom_cli.ok(
        "oauth", "connect", "support", "--provider", "microsoft", "--flow", "client-credentials",
        "--client-id", client.client_id, "--tenant", client.tenant, "--client-secret-stdin",
        *authority_options(oauth_server), input=f"{client.secret}\n",
    )
    assert f"as {user}" in result.stdout
    grant = _grant(database_url)
    token = decrypt_password(grant.access_token_encrypted)
    claims = oauth_server.verify(token or "")
    assert claims is not None and "IMAP.AccessAsApp" in claims["roles"] and claims["appid"] == client.client_id
    assert client.secret is not None and client.secret.encode() not in (grant.client_secret_encrypted or b"")

    status = postroom_cli.ok("oauth", "status", "support").stdout
    for secret in (client.secret, token):
        assert secret and secret not in status
    assert "provider: microsoft" in status and "flow: client-credentials" in status
    assert f"account: {user}" in status and "https://outlook.office365.com/.default" in status

    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            profile = session.scalars(select(MediaProfile).where(MediaProfile.name == "support")).one()
            assert app.plugins.access_token(profile) == token  # cached while valid
            assert app.plugins.access_token(profile) == token
    finally:
        app.dispose()
    assert issuer.count(client.client_id, "client_credentials") == 1

    postroom_cli.ok("oauth", "disconnect", "support")
    gone = postroom_cli.run("oauth", "status", "support")
    assert gone.exit_code == 1 and "has no OAuth2 sign-in" in gone.stderr


def test_wrong_client_secret_is_one_sentence(
    postroom_cli: Cli, oauth_server: OAuthServer, oauth_smtp: OAuthSmtp, oauth_dovecot: OAuthDovecot
) -> None:
    client = oauth_server.issuer.register_client()
    user, _ = oauth_dovecot.new_user("bad")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    result = postroom_cli.run(
        "oauth", "connect", "support", "--provider", "microsoft", "--flow", "client-credentials",
        "--client-id", client.client_id, "--tenant", client.tenant, "--client-secret-stdin",
        *authority_options(oauth_server), input="not-the-secret\n",
    )
    assert result.exit_code == 1
    assert "Microsoft refused the application's sign-in: invalid_client: AADSTS7000215" in result.stderr
    assert "not-the-secret" not in result.stderr and "Traceback" not in result.stderr


def test_default_scopes_follow_the_profiles_protocols() -> None:
    """A token is for one resource: Exchange Online's for IMAP, POP and SMTP, Graph's for the graph protocol."""
    from postroom.plugins.oauth.microsoft import PROVIDER

    assert PROVIDER.default_scopes("client-credentials", frozenset({"imaps", "smtp"})) == [
        "https://outlook.office365.com/.default"
    ]
    assert PROVIDER.default_scopes("client-credentials", frozenset({"graph"})) == ["https://graph.microsoft.com/.default"]
    assert PROVIDER.default_scopes("device-code", frozenset({"graph"})) == [
        "https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Mail.Send"
    ]
    assert "https://outlook.office.com/SMTP.Send" in PROVIDER.default_scopes("device-code", frozenset({"imap", "smtp"}))


def test_sign_in_mistakes_are_one_sentence(
    postroom_cli: Cli, oauth_server: OAuthServer, oauth_smtp: OAuthSmtp, oauth_dovecot: OAuthDovecot
) -> None:
    client = oauth_server.issuer.register_client()
    user, _ = oauth_dovecot.new_user("oops")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    base = ["oauth", "connect", "support", "--provider", "microsoft", "--client-id", client.client_id,
            *authority_options(oauth_server)]
    cases = {
        ("--flow", "client-credentials", "--client-secret-stdin"): "An application signs in to one directory: give it with --tenant.",
        ("--flow", "installed-app"): "Provider 'microsoft' offers the flows client-credentials, device-code, not 'installed-app'.",
        ("--flow", "client-credentials", "--tenant", client.tenant): "The client-credentials flow needs the client secret: give it with --client-secret-stdin.",
    }
    for options, sentence in cases.items():
        result = postroom_cli.run(*base, *options, input="x\n" if "--client-secret-stdin" in options else None)
        assert (result.exit_code, result.stderr.strip()) == (1, f"Error: {sentence}")
    unknown = postroom_cli.run("oauth", "status", "nobody")
    assert (unknown.exit_code, unknown.stderr.strip()) == (1, "Error: There is no media profile named 'nobody'.")

    postroom_cli.ok("plugins", "disable", "microsoft")
    disabled = postroom_cli.run(*base, "--flow", "device-code")
    assert disabled.stderr.strip() == (
        "Error: The token provider 'microsoft' is not installed or is disabled ('postroom plugins list')."
    )
