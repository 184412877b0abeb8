"""Refresh coordination and revoked grants: one refresh per expiry however many workers, and a revoked
grant puts only its own profile in error, with one sentence that says what to do.

The identity platform is the stand-in (tests/servers/oauth_server.py), which counts every token it
issues and rotates refresh tokens (a refresh token is good once: two workers refreshing with the same
one would make the second fail with invalid_grant). Dovecot is real.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile, OAuthGrant, ProfileStatus, utcnow
from postroom.core.inbound.fetch import Fetcher
from postroom.core.servers import outgoing_settings
from postroom.plugins.oauth.base import TokenUnavailable
from tests.oauth.grants import seed_device_code_grant
from tests.oauth.test_microsoft import _mail_profile
from tests.servers.oauth_mail import OAuthDovecot, OAuthSmtp
from tests.servers.oauth_server import OAuthServer
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import make_mail


def _profile_id(app: Postroom, name: str = "support") -> int:
    with app.sessions() as session:
        return session.scalars(select(MediaProfile.id).where(MediaProfile.name == name)).one()


def test_workers_asking_at_once_for_an_expired_token_refresh_it_once(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot, oauth_smtp: OAuthSmtp
) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client(public=True)
    user, _ = oauth_dovecot.new_user("race")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    seed_device_code_grant(database_url, "support", oauth_server, client, user, expires_in=0)

    apps = [Postroom(database_url) for _ in range(4)]  # four workers: four engines, four connections
    barrier = threading.Barrier(len(apps))
    tokens: list[str | None] = []

    def ask(app: Postroom) -> None:
        with app.sessions() as session:
            profile = session.get(MediaProfile, _profile_id(app))
            assert profile is not None
            barrier.wait()
            tokens.append(app.plugins.access_token(profile))

    threads = [threading.Thread(target=ask, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for app in apps:
        app.dispose()

    assert len(tokens) == 4 and len(set(tokens)) == 1
    assert len(issuer.refreshes(client.client_id)) == 1
    claims = oauth_server.verify(tokens[0] or "")
    assert claims is not None and claims["upn"] == user


def test_revoked_grant_puts_only_its_profile_in_error_with_one_sentence(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot, oauth_smtp: OAuthSmtp
) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client(public=True)
    revoked_user, _ = oauth_dovecot.new_user("revoked")
    fine_user, _ = oauth_dovecot.new_user("fine")
    for name, user in (("revoked", revoked_user), ("fine", fine_user)):
        _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user, name=name)
        seed_device_code_grant(database_url, name, oauth_server, client, user, expires_in=0)
        oauth_dovecot.deliver(user, make_mail("Hello", sender="Carla <carla@example.org>"))
    issuer.revoke(revoked_user)  # an administrator removed the consent

    result = postroom_cli.run("fetch", "--json")
    assert result.exit_code == 1
    reports = {report["profile"]: report for report in result.json()}
    sentence = (
        "The microsoft sign-in of profile 'revoked' is no longer valid (invalid_grant: AADSTS70000: "
        "The refresh token was revoked or has expired); run 'postroom oauth connect revoked "
        "--provider microsoft --flow device-code ...' again."
    )
    assert reports["revoked"]["error"] == sentence
    assert reports["fine"]["error"] is None and reports["fine"]["stored"] == 1
    app = Postroom(database_url)
    try:
        with app.sessions() as session:
            status = {name: state for name, state in session.execute(select(MediaProfile.name, MediaProfile.status))}
    finally:
        app.dispose()
    assert status == {"revoked": ProfileStatus.ERROR, "fine": ProfileStatus.OK}
    assert oauth_dovecot.count(revoked_user) == 1  # nothing fetched, nothing lost
    shown = postroom_cli.ok("oauth", "status", "revoked").stdout
    assert f"last error: {sentence}" in shown and "has refresh token: False" in shown

    # The dead refresh token is not sent again on every cycle: the next fetch fails at once, the same way.
    asked = issuer.count(client.client_id)
    again = postroom_cli.run("fetch", "--profile", "revoked", "--json").json()
    assert again[0]["error"] == sentence and issuer.count(client.client_id) == asked


@pytest.mark.postgres_only
def test_tokens_expiring_every_six_seconds_refresh_once_per_expiry_across_two_workers(
    pg_database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot, oauth_smtp: OAuthSmtp,
    token_lifetime: object,
) -> None:
    """One worker fetches, the other sends, both through the same profile's token on PostgreSQL, until the
    token has been refreshed twice; every refresh came when the token was due, never twice."""
    # Six seconds, not fewer: a token is handed out with a quarter of its life left at the least (1.5 s
    # here), which must cover a TLS handshake and AUTH on a loaded machine (at 4 s, 1 s once did not).
    token_lifetime(6)  # type: ignore[operator]
    issuer = oauth_server.issuer
    client = issuer.register_client(public=True)
    user, _ = oauth_dovecot.new_user("expiry")
    _mail_profile(Cli(pg_database_url), oauth_dovecot, oauth_smtp, user)
    seed_device_code_grant(pg_database_url, "support", oauth_server, client, user)
    fetch_app, send_app = Postroom(pg_database_url), Postroom(pg_database_url)
    profile_id = _profile_id(fetch_app)
    stop, problems = threading.Event(), []
    counts = {"fetched": 0, "sent": 0}
    smtp_sent = len(oauth_smtp.mails)

    def fetching() -> None:
        fetcher = Fetcher(fetch_app)
        while not stop.is_set():
            oauth_dovecot.deliver(user, make_mail("Still there?", sender="Carla <carla@example.org>"))
            report = fetcher.fetch_profile(profile_id)
            problems.extend([report.error] if report.error else [])
            counts["fetched"] += report.stored

    def sending() -> None:
        plugin = send_app.plugins.protocol("smtp")
        assert plugin is not None
        while not stop.is_set():
            with send_app.sessions() as session:
                profile = session.get(MediaProfile, profile_id)
                assert profile is not None
                try:
                    with plugin.open_sender(outgoing_settings(profile, plugin, send_app.plugins)) as sender:
                        sender.send(user, ["carla@example.org"], make_mail("Re: Still there?", sender=user))
                    counts["sent"] += 1
                except Exception as error:
                    problems.append(repr(error))

    threads = [threading.Thread(target=fetching), threading.Thread(target=sending)]
    for thread in threads:
        thread.start()
    give_up = time.monotonic() + 90  # a guard against a hang, not a measurement
    while len(issuer.refreshes(client.client_id)) < 2 and time.monotonic() < give_up and not problems:
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    fetch_app.dispose()
    send_app.dispose()

    assert problems == []
    refreshes = issuer.refreshes(client.client_id)
    assert len(refreshes) >= 2
    # Each refresh token was redeemed once (a second worker refreshing too would have been refused) ...
    assert len({r.refresh_token_used for r in refreshes}) == len(refreshes)
    # ... and only when the token it replaced was within the refresh margin (a quarter of 6 s) of expiring:
    # a worker that refreshed beside another would have replaced a token with nearly all its life left.
    assert all((r.replaced_remaining or 0) <= 1.5 + 0.05 for r in refreshes), [r.replaced_remaining for r in refreshes]
    assert counts["fetched"] > 0 and counts["sent"] > 0 and len(oauth_smtp.mails) == smtp_sent + counts["sent"]


def test_revoked_grant_fails_only_its_own_replies_with_the_same_sentence(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot, oauth_smtp: OAuthSmtp
) -> None:
    issuer = oauth_server.issuer
    client = issuer.register_client(public=True)
    app = Postroom(database_url)
    desk = Desk(app)
    tickets = {}
    for name in ("revoked", "fine"):
        user, _ = oauth_dovecot.new_user(f"send{name}")
        _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user, name=name)
        seed_device_code_grant(database_url, name, oauth_server, client, user, expires_in=0)
        desk.route(name)
        tickets[name] = desk.ticket(_profile_id(app, name))
        if name == "revoked":
            issuer.revoke(user)
    for ticket_id in tickets.values():
        postroom_cli.ok("ticket", "reply", str(ticket_id), "--body", "On its way.")
    sent_before = len(oauth_smtp.mails)

    postroom_cli.ok("send")

    assert len(oauth_smtp.mails) == sent_before + 1 and oauth_smtp.mails[-1][0].startswith("sendfine")
    rows = {row["profile"]: row for row in postroom_cli.ok("outbox", "list", "--json").json()}
    assert rows["fine"]["state"] == "sent"
    assert rows["revoked"]["state"] == "retry-scheduled"
    assert rows["revoked"]["last_error"].startswith("The microsoft sign-in of profile 'revoked' is no longer valid")
    assert rows["revoked"]["last_error"].endswith("run 'postroom oauth connect revoked --provider microsoft --flow device-code ...' again.")
    app.dispose()


def test_an_unreachable_authorisation_server_costs_nothing_while_the_token_still_works(
    postroom_cli: Cli, database_url: str, oauth_server: OAuthServer, oauth_dovecot: OAuthDovecot,
    oauth_smtp: OAuthSmtp, refused_port: int,
) -> None:
    client = oauth_server.issuer.register_client(public=True)
    user, _ = oauth_dovecot.new_user("away")
    _mail_profile(postroom_cli, oauth_dovecot, oauth_smtp, user)
    answer = seed_device_code_grant(database_url, "support", oauth_server, client, user)
    app = Postroom(database_url)
    try:
        with app.transaction() as session:
            grant = session.scalars(select(OAuthGrant)).one()
            grant.authority = f"https://127.0.0.1:{refused_port}"  # nobody answers there
            now = utcnow()
            grant.last_refresh_at, grant.access_token_expires_at = now - timedelta(seconds=90), now + timedelta(seconds=10)
        with app.sessions() as session:
            profile = session.get(MediaProfile, _profile_id(app))
            assert profile is not None
            # Due for refresh (10 s of 100 left), the refresh fails, the still valid token is used.
            assert app.plugins.access_token(profile) == answer["access_token"]
        with app.transaction() as session:
            grant = session.scalars(select(OAuthGrant)).one()
            assert "could be had for profile 'support'" in (grant.last_error or "")
            grant.access_token_expires_at = utcnow() - timedelta(seconds=1)
        with app.sessions() as session:
            profile = session.get(MediaProfile, _profile_id(app))
            assert profile is not None
            with pytest.raises(TokenUnavailable) as raised:
                app.plugins.access_token(profile)
        assert raised.value.kind == "connection" and str(raised.value).startswith(
            "No Microsoft access token could be had for profile 'support': ConnectionError reaching https://127.0.0.1:"
        )
        assert answer["refresh_token"] not in str(raised.value)
    finally:
        app.dispose()
