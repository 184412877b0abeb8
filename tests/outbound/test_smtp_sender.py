"""The smtp and smtps send protocols against real aiosmtpd servers (STARTTLS+AUTH, SMTPS+AUTH, plain)."""

from __future__ import annotations

import pytest

from postroom.core.contract.protocols import SendFailure
from postroom.core.contract.retry import ErrorCategory
from postroom.plugins.policies.classifier import classify_send_failure
from postroom.plugins.protocols.smtp import (
    SmtpProtocol,
    SmtpsProtocol,
    postroom_register_protocols,
)
from tests.servers.smtp import SMTP_ACCESS_TOKEN, SMTP_PASSWORD, SMTP_USERNAME, SmtpScript, SmtpServers

FROM = "support@postroom.test"
MAIL = b"From: support@postroom.test\r\nTo: customer@example.test\r\nSubject: Your case\r\n\r\nHello.\r\n"


def test_both_protocols_are_registered_as_send_only_with_their_default_ports() -> None:
    protocols = {cls.NAME: cls for cls in postroom_register_protocols()}
    assert protocols == {"smtp": SmtpProtocol, "smtps": SmtpsProtocol}
    assert (SmtpProtocol.DEFAULT_PORT, SmtpsProtocol.DEFAULT_PORT) == (25, 465)
    assert all(cls.CAN_SEND and not cls.CAN_FETCH for cls in protocols.values())


def test_mail_goes_out_over_starttls_after_login(smtp_servers: SmtpServers, smtp_script: SmtpScript) -> None:
    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        report = sender.send(FROM, ["customer@example.test"], MAIL)

    assert report.refused == {}
    [mail] = smtp_servers.received()
    assert (mail.server, mail.tls, mail.login) == ("starttls", True, SMTP_USERNAME)
    assert (mail.envelope_from, mail.recipients, mail.raw) == (FROM, ("customer@example.test",), MAIL)


def test_mail_goes_out_over_implicit_tls_after_login(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    with SmtpsProtocol().open_sender(smtp_servers.smtps.settings()) as sender:
        sender.send(FROM, ["customer@example.test"], MAIL)

    [mail] = smtp_servers.received()
    assert (mail.server, mail.tls, mail.login, mail.raw) == ("smtps", True, SMTP_USERNAME, MAIL)


def test_a_server_without_starttls_or_auth_gets_the_mail_in_the_clear(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    with SmtpProtocol().open_sender(smtp_servers.plain.settings()) as sender:
        sender.send(FROM, ["customer@example.test"], MAIL)

    [mail] = smtp_servers.received("plain")
    assert (mail.tls, mail.login) == (False, None)


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_wrong_password_is_reported_as_a_login_failure_without_the_password(
    smtp_servers: SmtpServers, smtp_script: SmtpScript, server: str
) -> None:
    endpoint = getattr(smtp_servers, server)
    protocol = SmtpsProtocol() if endpoint.protocol == "smtps" else SmtpProtocol()

    with pytest.raises(SendFailure) as caught:
        protocol.open_sender(endpoint.settings(password="not-the-password"))

    failure = caught.value
    assert (failure.kind, failure.reply_code) == ("auth", 535)
    assert f"127.0.0.1:{endpoint.port}" in str(failure) and SMTP_USERNAME in str(failure)
    assert "not-the-password" not in str(failure) and SMTP_PASSWORD not in str(failure)
    assert classify_send_failure(failure) is ErrorCategory.SECURITY_POLICY


def test_sending_without_login_to_a_server_that_requires_it_is_refused_by_the_server(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    sender = SmtpProtocol().open_sender(smtp_servers.starttls.settings(username=None, password=None))
    with sender, pytest.raises(SendFailure) as caught:
        sender.send(FROM, ["customer@example.test"], MAIL)

    assert (caught.value.reply_code, caught.value.kind) == (530, "protocol")
    assert smtp_servers.received() == []


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_self_signed_certificate_is_refused_while_verification_is_on(
    smtp_servers: SmtpServers, smtp_script: SmtpScript, server: str
) -> None:
    endpoint = getattr(smtp_servers, server)
    protocol = SmtpsProtocol() if endpoint.protocol == "smtps" else SmtpProtocol()

    with pytest.raises(SendFailure) as caught:
        protocol.open_sender(endpoint.settings(tls_verify=True))

    assert caught.value.kind == "tls"
    assert f"127.0.0.1:{endpoint.port}" in str(caught.value) and "--no-tls-verify" in str(caught.value)
    assert classify_send_failure(caught.value) is ErrorCategory.CONNECTION


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_self_signed_certificate_is_accepted_with_verification_off(
    smtp_servers: SmtpServers, smtp_script: SmtpScript, server: str
) -> None:
    endpoint = getattr(smtp_servers, server)
    protocol = SmtpsProtocol() if endpoint.protocol == "smtps" else SmtpProtocol()

    with protocol.open_sender(endpoint.settings(tls_verify=False)) as sender:
        sender.send(FROM, ["customer@example.test"], MAIL)

    assert [mail.server for mail in smtp_servers.received()] == [server]


def test_a_host_name_that_does_not_resolve_is_an_unknown_host(smtp_servers: SmtpServers) -> None:
    with pytest.raises(SendFailure) as caught:
        SmtpProtocol().open_sender(smtp_servers.plain.settings(host="smtp.nowhere.invalid"))

    assert caught.value.kind == "unknown-host"
    assert "smtp.nowhere.invalid" in str(caught.value)
    assert classify_send_failure(caught.value) is ErrorCategory.UNKNOWN_HOST


def test_a_port_where_nothing_listens_is_a_connection_failure(
    smtp_servers: SmtpServers, refused_port: int
) -> None:
    with pytest.raises(SendFailure) as caught:
        SmtpProtocol().open_sender(smtp_servers.plain.settings(port=refused_port))

    assert caught.value.kind == "connection"
    assert f"127.0.0.1:{refused_port} refused the connection" in str(caught.value)
    assert classify_send_failure(caught.value) is ErrorCategory.CONNECTION


def test_refused_recipients_come_back_in_the_report_and_the_others_get_the_mail(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_recipient("gone@example.test")
    smtp_script.refuse_recipient("full@example.test", "452 4.2.2 Mailbox full")

    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        report = sender.send(FROM, ["gone@example.test", "customer@example.test", "full@example.test"], MAIL)

    assert set(report.refused) == {"gone@example.test", "full@example.test"}
    gone, full = report.refused["gone@example.test"], report.refused["full@example.test"]
    assert (gone.reply_code, gone.recipient) == (550, "gone@example.test")
    assert gone.text == "5.1.1 The email account that you tried to reach does not exist"
    assert (full.reply_code, full.text) == (452, "4.2.2 Mailbox full")
    assert classify_send_failure(gone) is ErrorCategory.ADDRESSING
    assert classify_send_failure(full) is ErrorCategory.MAILBOX
    [mail] = smtp_servers.received()
    assert mail.recipients == ("customer@example.test",)


def test_when_every_recipient_is_refused_the_report_holds_each_refusal_and_the_connection_still_sends(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_recipient("gone@example.test")
    smtp_script.refuse_recipient("full@example.test", "452 4.2.2 Mailbox full")

    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        report = sender.send(FROM, ["gone@example.test", "full@example.test"], MAIL)
        # The transaction was reset, so the same connection still sends.
        sender.send(FROM, ["customer@example.test"], MAIL)

    assert {address: (f.reply_code, f.recipient) for address, f in report.refused.items()} == {
        "gone@example.test": (550, "gone@example.test"),
        "full@example.test": (452, "full@example.test"),
    }
    assert report.refused["gone@example.test"].text.startswith("5.1.1 ")
    assert len(smtp_servers.received()) == 1
    assert smtp_servers.connections("starttls") == 1


def test_a_server_closing_the_channel_at_one_recipient_fails_the_whole_send_and_the_next_mail_reconnects(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_recipient("second@example.test", "421 4.3.2 Service shutting down", times=1)

    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        with pytest.raises(SendFailure) as caught:
            sender.send(FROM, ["first@example.test", "second@example.test", "third@example.test"], MAIL)
        sender.send(FROM, ["customer@example.test"], MAIL)

    assert (caught.value.reply_code, caught.value.text, caught.value.recipient) == (
        421,
        "4.3.2 Service shutting down",
        None,
    )
    assert [mail.recipients for mail in smtp_servers.received()] == [("customer@example.test",)]
    assert smtp_servers.connections("starttls") == 2


def test_a_multi_line_data_refusal_keeps_the_whole_reply_and_the_first_code_decides(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_data("550-5.7.1 first line\r\n550 5.7.1 second")

    sender = SmtpsProtocol().open_sender(smtp_servers.smtps.settings())
    with sender, pytest.raises(SendFailure) as caught:
        sender.send(FROM, ["customer@example.test"], MAIL)

    failure = caught.value
    assert (failure.reply_code, failure.kind) == (550, "protocol")
    assert failure.text == "5.7.1 first line\n5.7.1 second"
    assert classify_send_failure(failure) is ErrorCategory.SECURITY_POLICY


def test_a_refused_sender_address_fails_the_send_with_the_servers_reply(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_sender("553 5.1.8 Sender address rejected: domain not found", address=FROM)

    sender = SmtpProtocol().open_sender(smtp_servers.plain.settings())
    with sender, pytest.raises(SendFailure) as caught:
        sender.send(FROM, ["customer@example.test"], MAIL)

    assert (caught.value.reply_code, caught.value.text) == (
        553,
        "5.1.8 Sender address rejected: domain not found",
    )
    assert classify_send_failure(caught.value) is ErrorCategory.ADDRESSING


def test_one_connection_carries_several_mails(smtp_servers: SmtpServers, smtp_script: SmtpScript) -> None:
    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        for number in range(3):
            sender.send(FROM, [f"customer{number}@example.test"], MAIL)

    mails = smtp_servers.received()
    assert [mail.recipients for mail in mails] == [(f"customer{n}@example.test",) for n in range(3)]
    assert len({mail.peer for mail in mails}) == 1
    assert smtp_servers.connections("starttls") == 1


def test_a_connection_the_server_dropped_is_reopened_for_the_next_mail(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        sender.send(FROM, ["first@example.test"], MAIL)
        smtp_servers.drop_connections()
        sender.send(FROM, ["second@example.test"], MAIL)

    assert [mail.recipients for mail in smtp_servers.received()] == [
        ("first@example.test",),
        ("second@example.test",),
    ]
    assert smtp_servers.connections("starttls") == 2


def test_a_server_that_hangs_up_mid_send_is_retried_once_on_a_new_connection(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.hang_up("DATA", times=1)

    with SmtpsProtocol().open_sender(smtp_servers.smtps.settings()) as sender:
        sender.send(FROM, ["customer@example.test"], MAIL)

    assert len(smtp_servers.received()) == 1
    assert smtp_servers.connections("smtps") == 2


def test_a_server_that_keeps_hanging_up_is_a_connection_failure(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.hang_up("MAIL", times=2)

    with SmtpProtocol().open_sender(smtp_servers.plain.settings()) as sender:
        with pytest.raises(SendFailure) as caught:
            sender.send(FROM, ["customer@example.test"], MAIL)
        # The script is spent: the same sender connects again for the next mail.
        sender.send(FROM, ["customer@example.test"], MAIL)

    assert caught.value.kind == "connection"
    assert f"127.0.0.1:{smtp_servers.plain.port}" in str(caught.value)
    assert len(smtp_servers.received()) == 1


def test_bare_line_feeds_are_sent_as_crlf_and_eight_bit_bodies_arrive_intact(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    raw = "Subject: Grüße\nContent-Type: text/plain; charset=utf-8\n\nGrüße aus Köln\n.leading dot\n".encode()

    with SmtpProtocol().open_sender(smtp_servers.plain.settings()) as sender:
        sender.send(FROM, ["customer@example.test"], raw)

    [mail] = smtp_servers.received()
    assert mail.raw == raw.replace(b"\n", b"\r\n")
    assert mail.message()["Subject"] == "Grüße"


def test_closing_a_sender_twice_is_harmless(smtp_servers: SmtpServers, smtp_script: SmtpScript) -> None:
    sender = SmtpProtocol().open_sender(smtp_servers.plain.settings())
    sender.close()
    sender.close()


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_ready_is_called_once_the_envelope_is_accepted_and_before_the_message_goes_out(
    server: str, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    seen: list[int] = []
    protocol = SmtpProtocol() if server == "starttls" else SmtpsProtocol()
    with protocol.open_sender(getattr(smtp_servers, server).settings()) as sender:
        sender.send_when_ready(
            FROM, ["customer@example.test"], MAIL, lambda: seen.append(len(smtp_servers.received()))
        )

    assert seen == [0]  # called once, while the server held no mail yet
    assert [mail.raw for mail in smtp_servers.received()] == [MAIL]


def test_ready_is_not_called_when_the_server_refuses_before_data(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    smtp_script.refuse_recipient("customer@example.test")
    seen: list[str] = []
    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        report = sender.send_when_ready(FROM, ["customer@example.test"], MAIL, lambda: seen.append("ready"))
    assert list(report.refused) == ["customer@example.test"]
    assert seen == [] and smtp_servers.received() == []


def test_a_ready_that_raises_keeps_the_mail_from_the_server_and_the_next_mail_uses_a_new_connection(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    def refuse() -> None:
        raise RuntimeError("the previous outcome could not be recorded")

    with SmtpProtocol().open_sender(smtp_servers.starttls.settings()) as sender:
        with pytest.raises(RuntimeError, match="previous outcome"):
            sender.send_when_ready(FROM, ["first@example.test"], MAIL, refuse)
        sender.send(FROM, ["second@example.test"], MAIL)

    assert [mail.recipients for mail in smtp_servers.received()] == [("second@example.test",)]
    assert smtp_servers.connections("starttls") == 2


@pytest.mark.parametrize("server", ["starttls", "smtps"])
def test_an_access_token_logs_in_with_xoauth2_instead_of_the_password(
    server: str, smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    protocol = SmtpProtocol() if server == "starttls" else SmtpsProtocol()
    settings = getattr(smtp_servers, server).settings(password=None, access_token=SMTP_ACCESS_TOKEN)
    with protocol.open_sender(settings) as sender:
        sender.send(FROM, ["customer@example.test"], MAIL)

    [mail] = smtp_servers.received()
    assert (mail.server, mail.tls, mail.login) == (server, True, SMTP_USERNAME)


def test_a_refused_access_token_is_a_login_failure_that_does_not_show_the_token(
    smtp_servers: SmtpServers, smtp_script: SmtpScript
) -> None:
    settings = smtp_servers.starttls.settings(password=None, access_token="expired-token")
    with pytest.raises(SendFailure) as refused:
        SmtpProtocol().open_sender(settings)

    assert (refused.value.kind, refused.value.reply_code) == ("auth", 535)
    assert SMTP_USERNAME in refused.value.text and "expired-token" not in refused.value.text
    assert classify_send_failure(refused.value) is ErrorCategory.SECURITY_POLICY  # as a wrong password
    assert smtp_servers.received() == []
