"""A profile's outgoing login of its own (issue 17), against real aiosmtpd servers and the real Dovecot.

``same`` (the incoming login) is what every other outbox test uses; here: ``none`` to a relay without
AUTH, ``password`` to a server that wants another login than the mailbox, ``token`` with a hook's
token for the outgoing server only, and what a login against a server without AUTH says.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from postroom import hookimpl
from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile, SendState
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import Outbox
from postroom.core.servers import CheckResult, check_profile
from tests.outbox.helpers import NOW, outbox_rows
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SMTP_ACCESS_TOKEN, SMTP_PASSWORD, SMTP_USERNAME, SmtpEndpoint, SmtpServers
from tests.support.cli import Cli
from tests.support.desk import Desk

pytestmark = pytest.mark.usefixtures("smtp_script")


def _check(app: Postroom, profile_id: int) -> list[CheckResult]:
    """What ``postroom profile test`` checks, for one profile."""
    with app.transaction() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        return check_profile(profile, app.plugins)


def _relay_profile(desk: Desk, endpoint: SmtpEndpoint, **values: Any) -> int:
    """A profile sending through ``endpoint`` whose own login the server would accept, if it were sent."""
    values.setdefault("username", SMTP_USERNAME)
    values.setdefault("password", SMTP_PASSWORD)
    return desk.profile(
        "relayed",
        send_protocol=endpoint.protocol,
        outgoing_host=endpoint.host,
        outgoing_port=endpoint.port,
        **values,
    )


def test_a_relay_without_auth_receives_the_reply_over_starttls_with_outgoing_login_none(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    relay = smtp_servers.relay
    profile_id = _relay_profile(desk, relay, outgoing_login="none")
    queue_reply(app, 1, desk.ticket(profile_id), "Relayed without a login.", now=NOW)

    report = Outbox(app).send_due(NOW)

    assert report.sent == 1
    [received] = smtp_servers.received("relay")
    assert (received.tls, received.login) == (True, None)  # STARTTLS offered, so used; no AUTH
    assert "Relayed without a login." in received.message().get_body(("plain",)).get_content()
    [outgoing] = _check(app, profile_id)
    assert outgoing == CheckResult(
        "outgoing",
        True,
        f"connected to smtp {relay.host}:{relay.port} without a login (outgoing login 'none')",
    )


def test_outgoing_login_none_sends_no_auth_even_where_the_server_offers_it(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    # The plainauth server offers AUTH without requiring it, and would accept the profile's login;
    # it offers no STARTTLS, yet with no credential to leak no plain-text consent is needed.
    profile_id = _relay_profile(desk, smtp_servers.plainauth, outgoing_login="none")
    queue_reply(app, 1, desk.ticket(profile_id), "No AUTH.", now=NOW)

    assert Outbox(app).send_due(NOW).sent == 1

    [received] = smtp_servers.received("plainauth")
    assert (received.tls, received.login) == (False, None)


def test_outgoing_login_none_still_verifies_the_relays_certificate(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    profile_id = _relay_profile(desk, smtp_servers.relay, outgoing_login="none", tls_verify=True)
    queue_reply(app, 1, desk.ticket(profile_id), "Not over an unverified TLS.", now=NOW)

    report = Outbox(app).send_due(NOW)

    assert (report.sent, report.retry_scheduled) == (0, 1)
    assert smtp_servers.received("relay") == []
    [row] = outbox_rows(app)
    assert row.last_error is not None and "could not be verified" in row.last_error
    [outgoing] = _check(app, profile_id)
    assert not outgoing.ok and "could not be verified" in outgoing.detail


@pytest.mark.parametrize("mode", ["same", "password"])
def test_a_login_to_a_server_without_auth_is_one_sentence_naming_outgoing_login_none(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers, mode: str
) -> None:
    relay = smtp_servers.relay
    login: dict[str, Any] = {"outgoing_login": mode}
    if mode == "password":
        login.update(outgoing_username="relay-user", outgoing_password="relay-pw")
    profile_id = _relay_profile(desk, relay, **login)
    user = SMTP_USERNAME if mode == "same" else "relay-user"
    sentence = (
        f"The SMTP server {relay.host}:{relay.port} does not offer AUTH, so user {user!r} cannot log in; "
        "if it is a relay that takes mail without a login, set "
        "'postroom profile modify relayed --outgoing-login none'."
    )

    assert _check(app, profile_id) == [CheckResult("outgoing", False, sentence)]

    queue_reply(app, 1, desk.ticket(profile_id), "Waits for a login.", now=NOW)
    report = Outbox(app).send_due(NOW)
    assert (report.sent, report.retry_scheduled) == (0, 1)
    [row] = outbox_rows(app)
    assert row.last_error == sentence


def test_an_outgoing_server_with_its_own_login_accepts_mode_password_and_refuses_the_incoming_login(
    app: Postroom,
    postroom_cli: Cli,
    dovecot: Dovecot,
    smtp_servers: SmtpServers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    smtp = smtp_servers.starttls
    mailbox_user, mailbox_password = dovecot.new_user("split")
    postroom_cli.ok(
        "profile",
        "add",
        "support",
        "--username",
        mailbox_user,
        "--password-stdin",
        "--fetch-protocol",
        "imap",
        "--incoming-host",
        dovecot.host,
        "--incoming-port",
        str(dovecot.imap_port),
        "--send-protocol",
        "smtp",
        "--outgoing-host",
        smtp.host,
        "--outgoing-port",
        str(smtp.port),
        "--outgoing-login",
        "password",
        "--outgoing-username",
        SMTP_USERNAME,
        "--outgoing-password-stdin",
        "--send-from-address",
        "support@acme.test",
        "--no-tls-verify",
        input=f"{mailbox_password}\n{SMTP_PASSWORD}\n",
    )
    desk = Desk(app)
    desk.route("support")

    tested = postroom_cli.ok("profile", "test", "support")

    assert tested.stdout.splitlines() == [
        f"ok     incoming: logged in to imap {dovecot.host}:{dovecot.imap_port} as {mailbox_user!r} "
        "and found folder 'INBOX'",
        f"ok     outgoing: logged in to smtp {smtp.host}:{smtp.port} as {SMTP_USERNAME!r}",
    ]
    with app.transaction() as session:
        profile = session.scalar(select(MediaProfile))
        assert profile is not None
        profile_id, stored = profile.id, profile.outgoing_password_encrypted
    assert stored is not None and SMTP_PASSWORD.encode() not in stored
    shown = [
        postroom_cli.ok("profile", "show", "support").stdout,
        postroom_cli.ok("profile", "show", "support", "--json").stdout,
        postroom_cli.ok("profile", "list", "--json").stdout,
        tested.stdout,
    ]
    assert all(SMTP_PASSWORD not in output and mailbox_password not in output for output in shown)
    assert "outgoing login         password" in shown[0]

    queue_reply(app, 1, desk.ticket(profile_id), "Sent with the outgoing server's own login.", now=NOW)
    assert postroom_cli.ok("send", "--now", NOW.isoformat()).stdout.strip() == (
        "Sent 1, retry scheduled 0, failed 0."
    )
    [received] = smtp_servers.received("starttls")
    assert (received.tls, received.login) == (True, SMTP_USERNAME)
    assert SMTP_PASSWORD not in caplog.text and mailbox_password not in caplog.text

    # The mailbox's own login is not the outgoing server's: with 'same' that server refuses it.
    postroom_cli.ok("profile", "modify", "support", "--outgoing-login", "same")
    refused = postroom_cli.run("profile", "test", "support")
    assert refused.exit_code == 1
    incoming, outgoing = refused.stdout.splitlines()
    assert incoming.startswith("ok     incoming: ")
    assert outgoing.startswith(
        f"FAILED outgoing: The SMTP server {smtp.host}:{smtp.port} refused the login of user {mailbox_user!r} (535"
    )
    with app.transaction() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        # Switching to 'same' drops the outgoing server's user and password: no secret stays unused.
        assert (profile.outgoing_username, profile.outgoing_password_encrypted) == (None, None)


class _OutgoingTokenProvider:
    """A token plugin that hands the SMTP server's token for the outgoing server only."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def postroom_get_access_token(self, profile: MediaProfile, server: str) -> str | None:
        self.asked.append(server)
        return SMTP_ACCESS_TOKEN if server == "outgoing" else None


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_outgoing_login_token_sends_auth_xoauth2_with_the_hooks_outgoing_token(
    database_url: str, dovecot: Dovecot, smtp_servers: SmtpServers, server: str
) -> None:
    smtp: SmtpEndpoint = getattr(smtp_servers, server)
    mailbox_user, mailbox_password = dovecot.new_user("token")
    provider = _OutgoingTokenProvider()
    app = Postroom(database_url, extra_plugins=[("outgoing-token", provider)])
    try:
        desk = Desk(app)
        profile_id = desk.profile(
            "m365",
            username=mailbox_user,
            password=mailbox_password,
            fetch_protocol="imap",
            incoming_host=dovecot.host,
            incoming_port=dovecot.imap_port,
            send_protocol=smtp.protocol,
            outgoing_host=smtp.host,
            outgoing_port=smtp.port,
            outgoing_login="token",
            outgoing_username=SMTP_USERNAME,
        )

        checks = _check(app, profile_id)
        queue_reply(app, 1, desk.ticket(profile_id), "Sent with a token.", now=NOW)
        report = Outbox(app).send_due(NOW)
    finally:
        app.dispose()

    # The incoming server was logged in to with the password (the hook gave no incoming token; the
    # SMTP token would not open the mailbox), the outgoing one with the token the server checked.
    assert [(check.what, check.ok) for check in checks] == [("incoming", True), ("outgoing", True)]
    assert checks[1].detail == (
        f"logged in to {smtp.protocol} {smtp.host}:{smtp.port} as {SMTP_USERNAME!r} with an access token"
    )
    assert {"incoming", "outgoing"} <= set(provider.asked)
    assert report.sent == 1
    [received] = smtp_servers.received(server)  # type: ignore[arg-type]
    assert (received.tls, received.login) == (True, SMTP_USERNAME)


def test_outgoing_login_token_without_a_token_fails_as_a_login_error_in_one_sentence(
    app: Postroom, desk: Desk, smtp_servers: SmtpServers
) -> None:
    profile_id = _relay_profile(desk, smtp_servers.starttls, outgoing_login="token")
    sentence = (
        "Profile 'relayed' logs in to its outgoing server with an access token, but no installed, enabled "
        "plugin gave one (hook postroom_get_access_token, server 'outgoing')."
    )

    assert _check(app, profile_id) == [CheckResult("outgoing", False, sentence)]

    queue_reply(app, 1, desk.ticket(profile_id), "Waits for a token.", now=NOW)
    report = Outbox(app).send_due(NOW)
    assert (report.sent, report.retry_scheduled + report.failed) == (0, 1)
    [row] = outbox_rows(app)
    assert row.last_error == sentence and row.state != SendState.SENT
    assert smtp_servers.connections("starttls") == 0  # nothing was sent to the server without a login
