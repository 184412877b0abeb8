"""The ``ews`` protocol against the loopback Exchange stand-in (no Exchange server can run here).

The stand-in answers the EWS SOAP operations exchangelib really sends; these tests show what the
plugin asks for and how it reads the answers, not how a real Exchange server behaves.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from exchangelib.protocol import Protocol

from postroom.core.contract.protocols import ConnectionSettings, ProtocolError, SendFailure
from postroom.core.contract.retry import ErrorCategory
from postroom.plugins.policies.classifier import classify_send_failure
from postroom.plugins.protocols import ews_connection
from postroom.plugins.protocols.ews import EwsProtocol, postroom_register_protocols
from tests.servers.ews_responder import EwsStandIn

PASSWORD = "s3cret-pw"


def mail(subject: str, to: str = "support@example.test", extra: str = "") -> bytes:
    return (
        f"From: Customer <customer@example.org>\r\nTo: {to}\r\n{extra}Subject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\nHello about {subject}.\r\n"
    ).encode()


@pytest.fixture
def user(ews_server: EwsStandIn) -> str:
    """A fresh, empty mailbox of its own for each test."""
    address = f"agent-{uuid.uuid4().hex[:10]}@example.test"
    ews_server.add_user(address, PASSWORD)
    return address


@pytest.fixture
def settings(ews_server: EwsStandIn, user: str) -> ConnectionSettings:
    return ConnectionSettings(
        profile_id=7,
        profile_name="support",
        host=ews_server.endpoint,
        port=None,
        username=user,
        password=PASSWORD,
        folder="Inbox",
        timeout=10,
    )


def test_the_plugin_registers_ews_for_fetching_and_sending_with_its_own_sent_copy() -> None:
    assert postroom_register_protocols() == [EwsProtocol]
    assert (EwsProtocol.NAME, EwsProtocol.CAN_FETCH, EwsProtocol.CAN_SEND) == ("ews", True, True)
    assert EwsProtocol.KEEPS_SENT_COPY


def test_a_bare_host_name_becomes_the_standard_ews_url_and_a_bad_url_is_named(
    settings: ConnectionSettings,
) -> None:
    assert ews_connection.endpoint_url(replace(settings, host="mail.example.com")) == (
        "https://mail.example.com/EWS/Exchange.asmx"
    )
    assert ews_connection.endpoint_url(replace(settings, host="mail.example.com", port=8443)) == (
        "https://mail.example.com:8443/EWS/Exchange.asmx"
    )
    with pytest.raises(ProtocolError, match="neither a host name nor an http"):
        ews_connection.endpoint_url(replace(settings, host="ftp://mail.example.com/EWS"))


def test_mail_is_listed_oldest_first_and_fetched_as_the_raw_bytes(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    raws = [mail(f"question {n}") for n in range(3)]
    for day, raw in zip((3, 1, 2), raws, strict=True):
        ews_server.deliver(user, raw, received=datetime(2024, 5, day, 9, tzinfo=UTC))

    with EwsProtocol().open_mailbox(settings) as mailbox:
        refs = mailbox.list_mail(None)
        fetched = list(mailbox.fetch([ref.key for ref in refs]))

    assert [f.raw for f in fetched] == [raws[1], raws[2], raws[0]]
    assert [f.key for f in fetched] == [ref.key for ref in refs]
    assert [ref.size for ref in refs] == [len(raws[1]), len(raws[2]), len(raws[0])]


def test_a_batch_is_downloaded_in_one_request(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    for n in range(5):
        ews_server.deliver(user, mail(f"batch {n}"))
    with EwsProtocol().open_mailbox(settings) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
        before = len(ews_server.operations)
        assert len(list(mailbox.fetch(keys))) == 5
    assert [op for who, op in ews_server.operations[before:] if who == user] == ["GetItem"]


def test_since_lists_only_mail_received_on_or_after_that_day(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    ews_server.deliver(user, mail("old"), received=datetime(2024, 5, 1, 23, 59, tzinfo=UTC))
    recent = ews_server.deliver(user, mail("new"), received=datetime(2024, 5, 2, 0, 0, tzinfo=UTC))
    with EwsProtocol().open_mailbox(settings) as mailbox:
        assert [ref.key for ref in mailbox.list_mail(date(2024, 5, 2))] == [recent]


def test_more_mail_than_one_page_is_all_listed(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = [ews_server.deliver(user, mail(f"n{n}"), received=start + timedelta(minutes=n)) for n in range(130)]
    with EwsProtocol().open_mailbox(settings) as mailbox:
        keys = [ref.key for ref in mailbox.list_mail(None)]
    assert keys == ids
    assert [op for who, op in ews_server.operations if who == user].count("FindItem") == 2


def test_delete_removes_exactly_the_given_mails_into_recoverable_items(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    keep, drop, gone = (ews_server.deliver(user, mail(s)) for s in ("keep", "drop", "gone"))
    with EwsProtocol().open_mailbox(settings) as mailbox:
        mailbox.delete([gone])
        mailbox.delete([drop, gone])  # one already deleted: not an error

    assert [item.item_id for item in ews_server.items(user)] == [keep]
    assert {(d.item_id, d.delete_type) for d in ews_server.deletions(user)} == {
        (drop, "SoftDelete"),
        (gone, "SoftDelete"),
    }
    assert ews_server.items(user, "Deleted Items") == []


def test_fetch_skips_a_mail_that_vanished_meanwhile(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    first = ews_server.deliver(user, mail("first"))
    second = ews_server.deliver(user, mail("second"))
    with EwsProtocol().open_mailbox(settings) as mailbox:
        mailbox.delete([first])
        assert [f.key for f in mailbox.fetch([first, second])] == [second]


def test_a_folder_path_below_the_inbox_is_fetched(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    ews_server.add_folder(user, "Inbox/Support/Tier 2")
    ews_server.deliver(user, mail("not this one"))
    wanted = ews_server.deliver(user, mail("escalated"), folder="Inbox/Support/Tier 2")
    for path in ("Inbox/Support/Tier 2", "inbox/support/tier 2", "Support/Tier 2"):
        with EwsProtocol().open_mailbox(replace(settings, folder=path)) as mailbox:
            mailbox.check()
            assert [ref.key for ref in mailbox.list_mail(None)] == [wanted], path


def test_a_missing_folder_is_reported_as_a_folder_error(settings: ConnectionSettings) -> None:
    with pytest.raises(ProtocolError) as caught:
        EwsProtocol().open_mailbox(replace(settings, folder="Inbox/Nowhere"))
    assert caught.value.kind == "folder"
    assert "'Inbox/Nowhere'" in str(caught.value)


def test_wrong_password_is_reported_as_a_login_failure(settings: ConnectionSettings) -> None:
    with pytest.raises(ProtocolError) as caught:
        EwsProtocol().open_mailbox(replace(settings, password="wrong-password"))
    assert caught.value.kind == "auth"
    assert str(settings.username) in str(caught.value)
    assert "wrong-password" not in str(caught.value)


def test_wrong_password_on_the_sending_side_is_a_send_failure_of_kind_auth(
    settings: ConnectionSettings,
) -> None:
    with pytest.raises(SendFailure) as caught:
        EwsProtocol().open_sender(replace(settings, password="wrong-password"))
    assert caught.value.kind == "auth"
    assert "wrong-password" not in caught.value.text


def test_a_user_name_that_is_no_address_cannot_name_the_mailbox(settings: ConnectionSettings) -> None:
    with pytest.raises(ProtocolError, match="email address"):
        EwsProtocol().open_mailbox(replace(settings, username="CORP\\agent"))


def test_send_delivers_and_exchange_saves_the_copy_in_sent_items(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    raw = mail("Re: your order", to="customer@example.org", extra="Cc: boss@example.org\r\n")
    with EwsProtocol().open_sender(replace(settings, folder=None)) as sender:
        report = sender.send(user, ["customer@example.org", "boss@example.org", "audit@example.org"], raw)

    assert report.refused == {}
    [sent] = ews_server.sent(user)
    assert sent.raw == raw and sent.saved_copy
    # The envelope-only recipient (a Bcc) is handed to Exchange explicitly.
    assert sent.recipients == ["customer@example.org", "boss@example.org", "audit@example.org"]
    [copy] = ews_server.items(user, "Sent Items")
    assert copy.raw == raw and not copy.is_draft


def test_the_sent_copy_goes_to_the_outgoing_folder_when_the_profile_names_one(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    ews_server.add_folder(user, "Sent Items/Support")
    raw = mail("Re: filed", to="customer@example.org")
    with EwsProtocol().open_sender(replace(settings, folder="Sent Items/Support")) as sender:
        sender.send(user, ["customer@example.org"], raw)
    assert [copy.raw for copy in ews_server.items(user, "Sent Items/Support")] == [raw]
    assert ews_server.items(user, "Sent Items") == []


def test_a_missing_outgoing_folder_fails_the_sender_as_a_folder_error(settings: ConnectionSettings) -> None:
    with pytest.raises(SendFailure) as caught:
        EwsProtocol().open_sender(replace(settings, folder="Sent Items/Nowhere"))
    assert caught.value.kind == "folder"


def test_a_refused_recipient_is_a_send_failure_with_an_addressing_status(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    ews_server.refuse("nobody@example.org", "ErrorInvalidRecipients", "The recipient is not valid.")
    with EwsProtocol().open_sender(settings) as sender, pytest.raises(SendFailure) as caught:
        sender.send(user, ["nobody@example.org"], mail("hello", to="nobody@example.org"))
    assert caught.value.kind == "protocol"
    assert caught.value.text.startswith("5.1.1 ErrorInvalidRecipients: The recipient is not valid.")
    assert classify_send_failure(caught.value) is ErrorCategory.ADDRESSING  # so: no retry
    assert ews_server.sent(user) == []


def test_append_stores_a_read_copy_that_is_not_a_draft(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    ews_server.add_folder(user, "Inbox/Answered")
    raw = mail("answered")
    with EwsProtocol().open_mailbox(settings) as mailbox:
        mailbox.append(raw, "Inbox/Answered")
        mailbox.append(raw, "Sent Items")
        with pytest.raises(ProtocolError) as caught:
            mailbox.append(raw, "Archive/2024")
    assert caught.value.kind == "folder"
    for folder in ("Inbox/Answered", "Sent Items"):
        [copy] = ews_server.items(user, folder)
        assert (copy.raw, copy.is_draft, copy.is_read) == (raw, False, True)


def test_an_unreachable_server_is_a_connection_error(settings: ConnectionSettings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = replace(settings, host=f"http://127.0.0.1:{port}/EWS/Exchange.asmx")
    with pytest.raises(ProtocolError) as caught:
        EwsProtocol().open_mailbox(closed)
    assert caught.value.kind == "connection"
    with pytest.raises(SendFailure) as refused:
        EwsProtocol().open_sender(closed)
    assert refused.value.kind == "connection"


def test_a_host_name_that_does_not_resolve_is_an_unknown_host(settings: ConnectionSettings) -> None:
    with pytest.raises(ProtocolError) as caught:
        EwsProtocol().open_mailbox(replace(settings, host="ews.no-such-host.invalid"))
    assert caught.value.kind == "unknown-host"
    assert "ews.no-such-host.invalid" in str(caught.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_self_signed_certificate_is_refused_unless_the_profile_switches_verification_off(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings
) -> None:
    tls = replace(settings, host=ews_server.tls_endpoint, profile_id=4242)
    with pytest.raises(ProtocolError) as caught:
        EwsProtocol().open_mailbox(tls)
    assert caught.value.kind == "tls"
    assert "--no-tls-verify" in str(caught.value)

    ews_server.deliver(user, mail("over TLS"))
    with EwsProtocol().open_mailbox(replace(tls, tls_verify=False)) as mailbox:
        assert len(mailbox.list_mail(None)) == 1

    with pytest.raises(ProtocolError):  # switched back on, the server is refused again
        EwsProtocol().open_mailbox(tls)


def test_the_login_method_can_be_forced_and_a_wrong_choice_is_named(
    ews_server: EwsStandIn, user: str, settings: ConnectionSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ews_connection.AUTH_ENV, "basic")
    with EwsProtocol().open_mailbox(settings) as mailbox:
        assert mailbox.list_mail(None) == []
    monkeypatch.setenv(ews_connection.AUTH_ENV, "kerberos")
    with pytest.raises(ProtocolError, match="POSTROOM_EWS_AUTH"):
        EwsProtocol().open_mailbox(settings)


def test_exchangelib_debug_logs_never_show_the_password(
    settings: ConnectionSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="exchangelib")
    with EwsProtocol().open_mailbox(settings) as mailbox:
        mailbox.list_mail(None)
    secret = base64.b64encode(f"{settings.username}:{PASSWORD}".encode()).decode()
    assert "Request headers" in caplog.text
    assert secret not in caplog.text and PASSWORD not in caplog.text


def _jwt(claims: dict[str, object]) -> str:
    """A token shaped like Microsoft Entra ID's (unsigned: only its claims matter here)."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.signature"


@pytest.fixture
def tls_settings(ews_server: EwsStandIn, settings: ConnectionSettings) -> Iterator[ConnectionSettings]:
    """The stand-in's https endpoint (tokens never travel over http), its self-signed certificate
    accepted for a profile of its own; switched back on afterwards, since the choice is per server."""
    tls = replace(settings, host=ews_server.tls_endpoint, tls_verify=False, profile_id=4343, password=None)
    yield tls
    ews_connection._apply_tls_choice(ews_connection.endpoint_url(tls), replace(tls, tls_verify=True))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_users_access_token_logs_in_with_oauth2_instead_of_the_password(
    ews_server: EwsStandIn, tls_settings: ConnectionSettings
) -> None:
    user = f"oauth-{uuid.uuid4().hex[:10]}@example.test"
    token = _jwt({"scp": "EWS.AccessAsUser.All", "upn": user})
    ews_server.add_user(user, "unused-password", token=token)
    ews_server.deliver(user, mail("Token login"))
    oauth = replace(tls_settings, username=user, access_token=token)

    with EwsProtocol().open_mailbox(oauth) as mailbox:
        [ref] = mailbox.list_mail(None)
        [fetched] = mailbox.fetch([ref.key])
    assert b"Subject: Token login" in fetched.raw
    with EwsProtocol().open_sender(oauth) as sender:
        sender.send(user, ["customer@example.org"], mail("Answer", to="customer@example.org"))
    assert [sent.recipients for sent in ews_server.sent(user)] == [["customer@example.org"]]
    assert ews_server.impersonated == [] or user not in ews_server.impersonated


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_an_application_token_acts_on_the_mailbox_by_impersonation(
    ews_server: EwsStandIn, tls_settings: ConnectionSettings, user: str
) -> None:
    token = _jwt({"roles": ["full_access_as_app"], "appid": "postroom"})
    ews_server.add_app_token(token)
    ews_server.deliver(user, mail("For the daemon"))

    app = replace(tls_settings, access_token=token)
    with EwsProtocol().open_mailbox(app) as mailbox:
        assert len(mailbox.list_mail(None)) == 1
    assert set(ews_server.impersonated) == {user}


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_refused_access_token_is_a_login_failure_that_does_not_show_the_token(
    tls_settings: ConnectionSettings,
) -> None:
    expired = _jwt({"scp": "EWS.AccessAsUser.All", "exp": 0})
    oauth = replace(tls_settings, access_token=expired)
    with pytest.raises(ProtocolError) as caught:
        EwsProtocol().open_mailbox(oauth)
    assert caught.value.kind == "auth"
    assert "access token" in str(caught.value) and expired not in str(caught.value)


def test_an_access_token_is_never_sent_over_plain_http(settings: ConnectionSettings) -> None:
    token = _jwt({"scp": "EWS.AccessAsUser.All"})
    with pytest.raises(ProtocolError, match="only ever sent over https") as caught:
        EwsProtocol().open_mailbox(replace(settings, password=None, access_token=token))
    assert token not in str(caught.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_refreshed_token_is_used_and_the_older_ones_connections_are_not_kept(
    ews_server: EwsStandIn, tls_settings: ConnectionSettings
) -> None:
    user = f"rotating-{uuid.uuid4().hex[:10]}@example.test"
    endpoint = ews_connection.endpoint_url(tls_settings)

    def cached() -> int:
        return sum(1 for key in Protocol._protocol_cache if key[0] == endpoint)

    before = cached()
    for hour in (0, 0, 1, 2):  # the same token twice (two fetch cycles), then refreshed ones
        token = _jwt({"scp": "EWS.AccessAsUser.All", "upn": user, "hour": hour})
        ews_server.add_user(user, "unused-password", token=token)  # the older token is refused from now on
        with EwsProtocol().open_mailbox(replace(tls_settings, username=user, access_token=token)) as mailbox:
            assert mailbox.list_mail(None) == []
    assert cached() - before <= 1
