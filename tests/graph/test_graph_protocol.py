"""The ``graph`` protocol against the loopback Microsoft Graph stand-in (no Graph service can run here).

The stand-in implements Graph's documented mail endpoints (tests/servers/graph_server.py); these
tests show what the plugin asks Graph for and how it reads the answers, not Graph itself.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage

import pytest
import requests

from postroom.core.contract.protocols import ConnectionSettings, ProtocolError, SendFailure
from postroom.core.contract.retry import ErrorCategory
from postroom.core.plugin_host import PluginHost
from postroom.plugins.policies.classifier import classify_send_failure
from postroom.plugins.protocols import graph_mailbox
from postroom.plugins.protocols.graph import GraphProtocol
from postroom.plugins.protocols.graph_client import base_url
from tests.servers import graph_tokens
from tests.servers.graph_server import GraphStandIn


def mail(subject: str, to: str = "support@contoso.test") -> bytes:
    return (
        f"From: Customer <customer@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\nHello about {subject}.\r\n"
    ).encode()


def test_graph_is_a_builtin_protocol_that_fetches_sends_and_keeps_its_sent_copy() -> None:
    plugin = PluginHost().protocol("graph")
    assert isinstance(plugin, GraphProtocol)
    assert (plugin.CAN_FETCH, plugin.CAN_SEND, plugin.KEEPS_SENT_COPY, plugin.NEEDS_HOST) == (
        True,
        True,
        True,
        False,
    )


def test_the_host_defaults_to_graph_and_may_name_another_https_endpoint(
    graph_settings: ConnectionSettings,
) -> None:
    assert base_url(replace(graph_settings, host=None, port=443)) == "https://graph.microsoft.com/v1.0"
    assert (
        base_url(replace(graph_settings, host="graph.microsoft.us", port=443))
        == "https://graph.microsoft.us/v1.0"
    )
    with pytest.raises(ProtocolError, match="https URL"):
        base_url(replace(graph_settings, host="http://graph.example.test"))


def test_mail_is_listed_oldest_first_by_immutable_id_and_fetched_as_its_mime(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    raws = [mail(f"question {n}") for n in range(3)]
    ids = [
        graph_server.deliver(graph_user, raw, received=datetime(2031, 5, day, 9, tzinfo=UTC))
        for day, raw in zip((3, 1, 2), raws, strict=True)
    ]
    with GraphProtocol().open_mailbox(graph_settings) as mailbox:
        refs = mailbox.list_mail(None)
        fetched = list(mailbox.fetch([ref.key for ref in refs]))
    assert [ref.key for ref in refs] == [ids[1], ids[2], ids[0]]  # immutable ids, not the REST ids
    assert [f.raw for f in fetched] == [raws[1], raws[2], raws[0]]


def test_delta_pages_are_followed_and_the_next_round_lists_only_new_mail(
    graph_server: GraphStandIn,
    graph_user: str,
    graph_settings: ConnectionSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(graph_mailbox, "PAGE_SIZE", 10)
    first = [graph_server.deliver(graph_user, mail(f"n{n}")) for n in range(25)]
    with GraphProtocol().open_mailbox(graph_settings) as mailbox:
        assert sorted(ref.key for ref in mailbox.list_mail(None)) == sorted(first)
        state = mailbox.sync_state()
    assert graph_server.count(graph_user, "delta") == 3  # 10 + 10 + 5, the last with the delta link

    new = graph_server.deliver(graph_user, mail("new"))
    with GraphProtocol().open_mailbox(replace(graph_settings, sync_state=state)) as mailbox:
        assert [ref.key for ref in mailbox.list_mail(None)] == [new]
    assert graph_server.count(graph_user, "delta") == 4


def test_an_expired_delta_link_lists_the_folder_afresh(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    kept = graph_server.deliver(graph_user, mail("kept"))
    stale = '{"folder":"inbox","since":null,"link":"%s/v1.0/users/%s/mailFolders/inbox/messages/delta?$deltatoken=gone"}'
    settings = replace(graph_settings, sync_state=stale % (graph_server.base_url, graph_user))
    with GraphProtocol().open_mailbox(settings) as mailbox:
        assert [ref.key for ref in mailbox.list_mail(None)] == [kept]


def test_since_asks_graph_for_mail_received_on_or_after_that_day(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    graph_server.deliver(graph_user, mail("old"), received=datetime(2031, 5, 1, 23, 59, tzinfo=UTC))
    recent = graph_server.deliver(graph_user, mail("new"), received=datetime(2031, 5, 2, 0, 0, tzinfo=UTC))
    with GraphProtocol().open_mailbox(graph_settings) as mailbox:
        assert [ref.key for ref in mailbox.list_mail(date(2031, 5, 2))] == [recent]
        state = mailbox.sync_state()
    # A link made with a narrower filter is not reused for a wider one: the older mail must be listed.
    with GraphProtocol().open_mailbox(replace(graph_settings, sync_state=state)) as mailbox:
        assert len(mailbox.list_mail(None)) == 2


def test_delete_removes_exactly_the_given_mails_and_tolerates_gone_ones(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    ids = [graph_server.deliver(graph_user, mail(f"d{n}")) for n in range(3)]
    with GraphProtocol().open_mailbox(graph_settings) as mailbox:
        mailbox.delete(ids[:2])
        mailbox.delete(ids[:1])  # already gone: a crash between delete and ledger note repeats it
    assert [m.immutable_id for m in graph_server.messages(graph_user)] == [ids[2]]
    assert graph_server.deleted(graph_user) == ids[:2]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: graph_tokens.mint(lifetime=-60), "expired"),
        (lambda: graph_tokens.mint(audience="https://outlook.office365.com"), "wrong audience"),
        (lambda: graph_tokens.mint(roles=["Mail.Send"]), "no Mail.ReadWrite"),
    ],
)
def test_a_token_graph_refuses_is_a_login_failure_that_never_shows_the_token(
    graph_settings: ConnectionSettings, token: object, reason: str
) -> None:
    value = token()  # type: ignore[operator]
    with (
        pytest.raises(ProtocolError) as caught,
        GraphProtocol().open_mailbox(replace(graph_settings, access_token=value)) as mailbox,
    ):
        mailbox.list_mail(None)
    assert caught.value.kind == "auth", reason
    assert value not in str(caught.value) and "refused the access token" in str(caught.value)


def test_no_token_at_all_is_said_in_one_sentence(graph_settings: ConnectionSettings) -> None:
    with pytest.raises(ProtocolError, match="no access token for Microsoft Graph"):
        GraphProtocol().open_mailbox(replace(graph_settings, access_token=None))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_the_certificate_is_verified_unless_the_profile_switches_it_off(
    graph_server: GraphStandIn,
    graph_user: str,
    graph_settings: ConnectionSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    graph_server.deliver(graph_user, mail("over TLS"))
    with pytest.raises(ProtocolError) as caught, GraphProtocol().open_mailbox(graph_settings) as mailbox:
        mailbox.list_mail(None)
    assert caught.value.kind == "tls" and "--no-tls-verify" in str(caught.value)
    with GraphProtocol().open_mailbox(replace(graph_settings, tls_verify=False)) as mailbox:
        assert len(mailbox.list_mail(None)) == 1


def test_a_short_throttling_of_a_read_is_waited_out_in_place(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    graph_server.deliver(graph_user, mail("throttled"))
    graph_server.fail("delta", 429, "TooManyRequests", retry_after="0")
    with GraphProtocol().open_mailbox(graph_settings) as mailbox:
        assert len(mailbox.list_mail(None)) == 1
    assert graph_server.count(graph_user, "delta") == 2


def test_a_long_throttling_of_a_read_fails_the_cycle_with_the_wait(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    graph_server.fail("delta", 503, "ServiceUnavailable", retry_after="300")
    with (
        pytest.raises(ProtocolError, match=r"throttled .* 300 s"),
        GraphProtocol().open_mailbox(graph_settings) as mailbox,
    ):
        mailbox.list_mail(None)
    assert graph_server.count(graph_user, "delta") == 1


def test_a_reply_goes_out_as_its_exact_mime_and_graph_keeps_the_sent_copy(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    raw = mail("Re: your order", to="carla@example.org")
    with GraphProtocol().open_sender(graph_settings) as sender:
        assert sender.send(graph_user, ["carla@example.org"], raw).refused == {}
    [sent] = graph_server.sent(graph_user)
    assert (sent.raw, sent.recipients, sent.via) == (raw, ["carla@example.org"], "sendMail")
    assert [m.raw for m in graph_server.messages(graph_user, "sentitems")] == [raw]


def test_a_mail_over_four_megabytes_goes_by_draft_and_upload_session(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = graph_user, "carla@example.org", "The scans"
    message.set_content("Attached.")
    scan = bytes(range(256)) * (5 * 4096)  # 5 MB
    message.add_attachment(scan, maintype="application", subtype="pdf", filename="scan.pdf")
    with GraphProtocol().open_sender(graph_settings) as sender:
        sender.send(graph_user, ["carla@example.org"], message.as_bytes())
    [sent] = graph_server.sent(graph_user)
    assert sent.via == "draft+send" and sent.recipients == ["carla@example.org"]
    assert sent.attachments == [("scan.pdf", "application/pdf", scan)]
    assert message_from_bytes(sent.raw)["Subject"] == "The scans"
    assert graph_server.count(graph_user, "upload") == 2  # ranges under 4 MB each
    assert graph_server.messages(graph_user, "drafts") == []


@pytest.mark.parametrize(
    ("status", "code", "category"),
    [
        (429, "TooManyRequests", ErrorCategory.NETWORK_ROUTING),
        (503, "ServiceUnavailable", ErrorCategory.NETWORK_ROUTING),
        (400, "ErrorInvalidRecipients", ErrorCategory.ADDRESSING),
        (400, "ErrorMessageSizeExceeded", ErrorCategory.MESSAGE_CONTENT),
        (403, "ErrorAccessDenied", ErrorCategory.SECURITY_POLICY),
        (401, "InvalidAuthenticationToken", ErrorCategory.SECURITY_POLICY),
        (500, "InternalServerError", ErrorCategory.MAIL_SYSTEM),
    ],
)
def test_a_refused_send_is_classified_by_graphs_answer(
    graph_server: GraphStandIn,
    graph_settings: ConnectionSettings,
    status: int,
    code: str,
    category: ErrorCategory,
) -> None:
    graph_server.fail("sendMail", status, code, retry_after="120" if status in (429, 503) else None)
    with pytest.raises(SendFailure) as caught, GraphProtocol().open_sender(graph_settings) as sender:
        sender.send("x@contoso.test", ["carla@example.org"], mail("hi", to="carla@example.org"))
    assert PluginHost().classify_send_error(caught.value, None) == category  # type: ignore[arg-type]
    assert caught.value.retry_after == (120 if status in (429, 503) else None)
    if (
        code != "ErrorMessageSizeExceeded"
    ):  # the builtin classifier alone agrees, except where Graph's plugin decides
        assert classify_send_failure(caught.value) == category


def test_an_unreachable_graph_is_a_connection_failure(graph_settings: ConnectionSettings) -> None:
    with (
        pytest.raises(SendFailure) as caught,
        GraphProtocol().open_sender(replace(graph_settings, host="https://127.0.0.1:9")) as sender,
    ):
        sender.send("x@contoso.test", ["carla@example.org"], mail("hi"))
    assert caught.value.kind == "connection"
    assert classify_send_failure(caught.value) == ErrorCategory.CONNECTION


def test_an_envelope_only_recipient_is_given_to_graph_as_bcc(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    raw = mail("copy", to="carla@example.org")
    with GraphProtocol().open_sender(graph_settings) as sender:
        sender.send(graph_user, ["carla@example.org", "audit@contoso.test"], raw)
    [sent] = graph_server.sent(graph_user)
    assert sent.recipients == ["carla@example.org", "audit@contoso.test"]
    assert sent.raw == b"Bcc: audit@contoso.test\r\n" + raw  # the composer's bytes follow, untouched


def test_a_key_is_the_immutable_id_so_it_survives_a_move_that_changes_graphs_default_id(
    graph_server: GraphStandIn, graph_user: str, graph_settings: ConnectionSettings
) -> None:
    raw = mail("moved about")
    graph_server.deliver(graph_user, raw)
    with GraphProtocol().open_mailbox(graph_settings) as mailbox:
        [ref] = mailbox.list_mail(None)
    [stored] = graph_server.messages(graph_user)
    rest_id = stored.rest_id
    url = f"{graph_server.base_url}/v1.0/users/{graph_user}/messages"
    headers = {"Authorization": f"Bearer {graph_settings.access_token}"}
    for folder in ("junkemail", "inbox"):  # a user's rule files it away, someone puts it back
        moved = requests.post(
            f"{url}/{rest_id}/move", json={"destinationId": folder}, headers=headers, timeout=10
        )
        assert moved.status_code == 201
        rest_id = moved.json()["id"]
    assert rest_id != stored.immutable_id and ref.key == stored.immutable_id
    with GraphProtocol().open_mailbox(graph_settings) as mailbox:
        assert [f.raw for f in mailbox.fetch([ref.key])] == [raw]
