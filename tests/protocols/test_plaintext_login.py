"""TLS before any credential: a man in the middle who strips STARTTLS/STLS gets no password or token.

Each server sits behind a :class:`StrippingProxy` that removes the upgrade from what the server
offers and records every byte the client sent. Only a profile that allows plain-text login logs in.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator

import pytest

from postroom.core.app import Postroom
from postroom.core.contract.protocols import ConnectionSettings, ProtocolError, SendFailure
from postroom.plugins.protocols.imap import ImapProtocol
from postroom.plugins.protocols.pop3 import Pop3Protocol
from postroom.plugins.protocols.smtp import SmtpProtocol
from tests.outbox.helpers import failure_rows, outbox_rows, queue_customer_reply, send_at
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SMTP_ACCESS_TOKEN, SMTP_PASSWORD, SMTP_USERNAME, SmtpScript, SmtpServers
from tests.servers.strip_proxy import StrippingProxy
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import make_mail, numbered_mail

SWITCH = "--allow-plaintext-login"


@pytest.fixture(scope="module")
def proxies(dovecot: Dovecot, smtp_servers: SmtpServers) -> Iterator[dict[str, StrippingProxy]]:
    """One stripping proxy in front of Dovecot's IMAP and POP3 ports and the STARTTLS SMTP server."""
    started = {
        "imap": StrippingProxy(dovecot.host, dovecot.imap_port),
        "pop3": StrippingProxy(dovecot.host, dovecot.pop3_port),
        "smtp": StrippingProxy(smtp_servers.starttls.host, smtp_servers.starttls.port),
    }
    try:
        yield started
    finally:
        for proxy in started.values():
            proxy.close()


@pytest.fixture
def mitm(proxies: dict[str, StrippingProxy]) -> dict[str, StrippingProxy]:
    for proxy in proxies.values():
        proxy.clear()
    return proxies


def _through(settings: ConnectionSettings, proxy: StrippingProxy, **changes: object) -> ConnectionSettings:
    return dataclasses.replace(settings, host=proxy.host, port=proxy.port, **changes)  # type: ignore[arg-type]


def _assert_no_credential(sent: bytes, user: str, secret: str, *commands: bytes) -> None:
    """Neither the secret (raw or inside a SASL blob) nor any login command crossed the wire."""
    assert sent, "the client never talked to the proxy"
    assert secret.encode() not in sent
    for blob in (f"\0{user}\0{secret}", f"user={user}\x01auth=Bearer {secret}\x01\x01", secret):
        assert base64.b64encode(blob.encode()) not in sent
    for command in commands:
        assert command not in sent.upper(), command


def _assert_one_sentence(message: str, where: str, profile: str) -> None:
    assert where in message
    assert f"'postroom profile modify {profile} --allow-plaintext-login'" in message
    assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message


@pytest.mark.parametrize("tls_verify", [True, False])
def test_imap_sends_no_password_when_a_man_in_the_middle_strips_starttls(
    dovecot: Dovecot, mitm: dict[str, StrippingProxy], tls_verify: bool
) -> None:
    user, password = dovecot.new_user("strip")
    proxy = mitm["imap"]

    with pytest.raises(ProtocolError) as refused:
        ImapProtocol().open_mailbox(_through(dovecot.settings(user, "imap", tls_verify=tls_verify), proxy))

    assert refused.value.kind == "tls"
    _assert_one_sentence(str(refused.value), f"IMAP server {proxy.host}:{proxy.port}", "support")
    assert "STARTTLS" in str(refused.value)
    _assert_no_credential(proxy.sent(), user, password, b"LOGIN", b"AUTHENTICATE", user.upper().encode())


def test_imap_sends_no_oauth2_token_when_starttls_is_stripped(
    dovecot: Dovecot, mitm: dict[str, StrippingProxy]
) -> None:
    user, password = dovecot.new_user("strip-token")
    proxy = mitm["imap"]
    settings = _through(dovecot.settings(user, "imap", password=None, access_token=password), proxy)

    with pytest.raises(ProtocolError):
        ImapProtocol().open_mailbox(settings)

    _assert_no_credential(proxy.sent(), user, password, b"AUTHENTICATE", b"XOAUTH2")


@pytest.mark.parametrize("tls_verify", [True, False])
def test_pop3_sends_no_password_when_a_man_in_the_middle_strips_stls(
    dovecot: Dovecot, mitm: dict[str, StrippingProxy], tls_verify: bool
) -> None:
    user, password = dovecot.new_user("strip-pop")
    proxy = mitm["pop3"]

    with pytest.raises(ProtocolError) as refused:
        Pop3Protocol().open_mailbox(_through(dovecot.settings(user, "pop3", tls_verify=tls_verify), proxy))

    assert refused.value.kind == "tls"
    _assert_one_sentence(str(refused.value), f"POP3 server {proxy.host}:{proxy.port}", "support")
    assert "STLS" in str(refused.value)
    _assert_no_credential(proxy.sent(), user, password, b"USER", b"PASS", b"AUTH")


@pytest.mark.parametrize("token", [False, True])
def test_smtp_sends_no_auth_when_a_man_in_the_middle_strips_starttls(
    smtp_servers: SmtpServers, mitm: dict[str, StrippingProxy], token: bool
) -> None:
    proxy = mitm["smtp"]
    secret = SMTP_ACCESS_TOKEN if token else SMTP_PASSWORD
    settings = _through(
        smtp_servers.starttls.settings(tls_verify=True, profile_name="sales"),
        proxy,
        **({"password": None, "access_token": SMTP_ACCESS_TOKEN} if token else {}),
    )

    with pytest.raises(SendFailure) as refused:
        SmtpProtocol().open_sender(settings)

    assert refused.value.kind == "tls"
    assert refused.value.reply_code is None
    _assert_one_sentence(refused.value.text, f"SMTP server {proxy.host}:{proxy.port}", "sales")
    _assert_no_credential(proxy.sent(), SMTP_USERNAME, secret, b"AUTH")


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_profile_that_allows_plaintext_login_logs_in_where_no_tls_is_offered(
    dovecot: Dovecot, mitm: dict[str, StrippingProxy], protocol: str
) -> None:
    user, password = dovecot.new_user("clear")
    mail = make_mail("Sent in clear")
    dovecot.deliver(user, mail)
    proxy = mitm[protocol]
    plugin = ImapProtocol() if protocol == "imap" else Pop3Protocol()
    settings = _through(dovecot.settings(user, protocol), proxy, allow_plaintext_login=True)

    with plugin.open_mailbox(settings) as mailbox:
        assert [fetched.raw for fetched in mailbox.fetch([ref.key for ref in mailbox.list_mail(None)])] == [mail]

    assert password.encode() in proxy.sent()  # what the switch allows: the login went in clear


def test_an_smtp_profile_that_allows_plaintext_login_sends_through_a_server_without_tls(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    settings = smtp_servers.plainauth.settings(tls_verify=True, allow_plaintext_login=True)

    with SmtpProtocol().open_sender(settings) as sender:
        sender.send("agent@example.test", ["customer@example.org"], make_mail("In clear, by consent"))

    [received] = smtp_servers.received("plainauth")
    assert (received.login, received.tls) == (SMTP_USERNAME, False)


def test_a_stripped_fetch_puts_the_profile_in_error_until_the_operator_allows_plaintext_login(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, mitm: dict[str, StrippingProxy]
) -> None:
    user, password = dovecot.new_user("fetch-strip")
    dovecot.deliver(user, numbered_mail(1))
    proxy = mitm["imap"]
    postroom_cli.ok(
        "profile", "add", "support", "--username", user, "--password-stdin", "--fetch-protocol", "imap",
        "--incoming-host", proxy.host, "--incoming-port", str(proxy.port),
        input=f"{password}\n",
    )  # fmt: skip

    result = postroom_cli.run("fetch", "--json")

    assert result.exit_code == 1
    [profile] = postroom_cli.ok("profile", "list", "--json").json()
    assert profile["status"] == "error"
    reason = profile["last_error"]
    _assert_one_sentence(reason, f"{proxy.host}:{proxy.port}", "support")
    assert reason in result.stderr
    _assert_no_credential(proxy.sent(), user, password, b"LOGIN", b"AUTHENTICATE")
    assert dovecot.count(user) == 1

    postroom_cli.ok("profile", "modify", "support", SWITCH)
    [report] = postroom_cli.ok("fetch", "--json").json()

    assert (report["stored"], report["error"]) == (1, None)
    assert postroom_cli.ok("profile", "list", "--json").json()[0]["status"] == "ok"


def test_a_send_through_a_stripping_server_sends_no_auth_and_fails_as_a_connection_error(
    app: Postroom, smtp_servers: SmtpServers, smtp_script: SmtpScript, mitm: dict[str, StrippingProxy]
) -> None:
    desk = Desk(app)
    proxy = mitm["smtp"]
    profile_id = desk.profile(
        "support",
        send_protocol="smtp",
        outgoing_host=proxy.host,
        outgoing_port=proxy.port,
        username=SMTP_USERNAME,
        password=SMTP_PASSWORD,
    )
    queue_customer_reply(desk, profile_id)

    report = send_at(app)

    assert (report.sent, report.retry_scheduled) == (0, 1)
    [failure] = failure_rows(app)
    assert failure.category == "connection error"
    assert failure.reply_code is None and failure.text is not None
    _assert_one_sentence(failure.text, f"SMTP server {proxy.host}:{proxy.port}", "support")
    _assert_no_credential(proxy.sent(), SMTP_USERNAME, SMTP_PASSWORD, b"AUTH")
    assert smtp_servers.received() == []
    assert [row.attempts for row in outbox_rows(app)] == [1]
