"""Passwords never reach a log line, even with every logger at DEBUG (imaplib, poplib, smtplib talk a lot)."""

from __future__ import annotations

import logging

import pytest

from postroom.plugins.protocols.imap import ImapProtocol, ImapsProtocol
from postroom.plugins.protocols.pop3 import Pop3Protocol, Pop3sProtocol
from postroom.plugins.protocols.smtp import SmtpProtocol, SmtpsProtocol
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServers
from tests.support.mail import make_mail


@pytest.mark.parametrize(
    ("protocol", "plugin"),
    [("imap", ImapProtocol), ("imaps", ImapsProtocol), ("pop3", Pop3Protocol), ("pop3s", Pop3sProtocol)],
)
def test_fetching_logs_no_password(
    dovecot: Dovecot,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    protocol: str,
    plugin: type,
) -> None:
    user, password = dovecot.new_user("logs")
    dovecot.deliver(user, make_mail("Secret-free logs"))
    with caplog.at_level(logging.DEBUG), plugin().open_mailbox(dovecot.settings(user, protocol)) as mailbox:
        refs = mailbox.list_mail(None)
        assert len(list(mailbox.fetch([r.key for r in refs]))) == 1
    if protocol.startswith("imap"):  # imaplib logs every command at DEBUG (poplib prints nothing by default)
        assert caplog.records, "nothing was logged at DEBUG, so this test shows nothing"
    printed = capfd.readouterr()
    assert password not in caplog.text + printed.out + printed.err


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_sending_logs_no_password(
    smtp_servers: SmtpServers, caplog: pytest.LogCaptureFixture, server: str
) -> None:
    endpoint = getattr(smtp_servers, server)
    plugin = SmtpProtocol() if endpoint.protocol == "smtp" else SmtpsProtocol()
    raw = make_mail("Hello")
    with caplog.at_level(logging.DEBUG), plugin.open_sender(endpoint.settings()) as sender:
        sender.send(endpoint.username, ["customer@example.test"], raw)
    assert endpoint.password and endpoint.password not in caplog.text
