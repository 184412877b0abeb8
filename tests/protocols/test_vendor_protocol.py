"""A vendor's protocol, the example of docs/protocols.md, gets a builtin's treatment with no core change.

The example (``tests/protocols/mailhub_example.py``, which the guide shows verbatim) is registered
the way an installed plugin is, and talks to a small real Mailhub server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile, SendState, Ticket
from postroom.core.inbound.fetch import Fetcher
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import send_due
from postroom.core.servers import check_profile, incoming_settings, outgoing_settings
from tests.outbox.helpers import failure_rows, outbox_rows
from tests.protocols import mailhub_example
from tests.support.desk import CUSTOMER_MAIL, Desk
from tests.support.mail import make_mail

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "protocols.md"
USER, PASSWORD = "support@hub.test", "hub-secret"


@dataclass
class MailhubServer:
    """The service's side: one account with its folders, what it was asked to send, what it refuses."""

    port: int = 0
    folders: dict[str, dict[str, tuple[bytes, date]]] = field(default_factory=lambda: {"Inbox": {}})
    sent: list[dict[str, object]] = field(default_factory=list)
    refused_recipients: dict[str, tuple[int, str]] = field(default_factory=dict)
    refuse_every_mail: tuple[int, str] | None = None
    next_id: int = 0
    #: The Authorization header of every request, in order.
    authorizations: list[str] = field(default_factory=list)

    def deliver(self, raw: bytes, folder: str = "Inbox") -> str:
        self.next_id += 1
        key = f"m-{self.next_id}"
        self.folders[folder][key] = (raw, date.today())
        return key

    def answer(self, method: str, path: str, authorization: str, body: bytes) -> tuple[int, object]:
        """Status and JSON (or raw bytes) of one request to ``/api/v1``."""
        self.authorizations.append(authorization)
        login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if authorization != f"Basic {login}":
            return 401, {"code": 535, "text": "5.7.8 Authentication failed"}
        url = urlsplit(path)
        route = url.path.removeprefix("/api/v1")
        if method == "GET" and route == "/account":
            return 200, {"address": USER}
        if match := re.fullmatch(r"/folders/([^/]+)(/mail)?", route):
            folder = self.folders.get(unquote(match[1]))
            if folder is None:
                return 404, {}
            since = parse_qs(url.query).get("since")
            return 200, [
                {"id": key, "size": len(raw)}
                for key, (raw, received) in folder.items()
                if not since or received >= date.fromisoformat(since[0])
            ] if match[2] else {"count": len(folder)}
        if match := re.fullmatch(r"/mail/([^/]+)(/raw)?", route):
            key, inbox = unquote(match[1]), self.folders["Inbox"]
            if key not in inbox:
                return 404, {}
            if method == "DELETE":
                del inbox[key]
                return 200, {}
            return 200, inbox[key][0]
        if method == "POST" and route == "/send":
            if self.refuse_every_mail:
                code, text = self.refuse_every_mail
                return 554, {"code": code, "text": text}
            mail = json.loads(body)
            refused = {a: self.refused_recipients[a] for a in mail["to"] if a in self.refused_recipients}
            if len(refused) < len(mail["to"]):
                self.sent.append(mail)
            return 200, {"refused": {a: {"code": c, "text": t} for a, (c, t) in refused.items()}}
        return 404, {}


@pytest.fixture
def mailhub() -> Iterator[MailhubServer]:
    """A Mailhub server speaking plain HTTP on 127.0.0.1, like a local appliance."""
    service = MailhubServer()

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, document = service.answer(
                self.command, self.path, self.headers.get("Authorization", ""), body
            )
            payload = document if isinstance(document, bytes) else json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = handle_one

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test's assertions say what happened."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def vendor_app(database_url: str) -> Iterator[Postroom]:
    """postroom with the example registered as its entry point would register it: by plugin name."""
    app = Postroom(database_url, extra_plugins=[("mailhub", mailhub_example)])
    try:
        yield app
    finally:
        app.dispose()


def test_the_guide_shows_the_example_module_verbatim() -> None:
    source = Path(mailhub_example.__file__).read_text()

    assert f"```python\n{source}```\n" in GUIDE.read_text()


def test_a_profile_made_with_the_vendor_protocol_gets_its_default_folder_and_ports_from_the_class(
    vendor_app: Postroom,
) -> None:
    desk = Desk(vendor_app)
    hub = {"incoming_host": "hub.example", "outgoing_host": "hub.example"}
    desk.profile("hosted", fetch_protocol="mailhub", send_protocol="mailhub", **hub)
    desk.profile("appliance", fetch_protocol="mailhub-http", incoming_host="10.0.0.7")
    desk.profile("chosen", fetch_protocol="mailhub", incoming_host="hub.example", incoming_port=8443)

    plugins = vendor_app.plugins
    with vendor_app.transaction() as session:
        profiles = session.scalars(select(MediaProfile).order_by(MediaProfile.id)).all()
        stored = [(p.name, p.incoming_folder, p.incoming_port) for p in profiles]
        settings = [incoming_settings(p, plugins) for p in profiles]
        incoming = [(p.name, s.folder, s.port) for p, s in zip(profiles, settings, strict=True)]
        sender = plugins.protocol("mailhub")
        assert sender is not None
        outgoing = outgoing_settings(profiles[0], sender, plugins)

    # Stored at creation: the folder (the profile shows it); the port stays the profile's own.
    assert stored == [("hosted", "Inbox", None), ("appliance", "Inbox", None), ("chosen", "Inbox", 8443)]
    # Filled in when connecting: the class's port unless the profile names one.
    assert incoming == [("hosted", "Inbox", 443), ("appliance", "Inbox", 8080), ("chosen", "Inbox", 8443)]
    assert outgoing.port == 443
    assert next(p for p in plugins.catalogue if p.name == "mailhub").provides == ["mailhub", "mailhub-http"]


def test_the_vendor_protocol_fetches_and_sends_through_the_core_like_a_builtin(
    vendor_app: Postroom, mailhub: MailhubServer
) -> None:
    mailhub.deliver(make_mail(**{**CUSTOMER_MAIL, "to": USER, "cc": "Dan <dan@gone.example>"}))
    mailhub.deliver(make_mail(**{**CUSTOMER_MAIL, "subject": "And my invoice?", "to": USER, "sender": "Erin <erin@example.org>"}))
    mailhub.refused_recipients["dan@gone.example"] = (550, "5.1.1 No such user")
    desk = Desk(vendor_app)
    profile_id = desk.profile(
        "appliance",
        fetch_protocol="mailhub-http",
        incoming_host="127.0.0.1",
        incoming_port=mailhub.port,
        delete_on_fetch=True,
        send_protocol="mailhub-http",
        outgoing_host="127.0.0.1",
        outgoing_port=mailhub.port,
        username=USER,
        password=PASSWORD,
        allow_plaintext_login=True,
        send_from_address=USER,
    )

    fetched = Fetcher(vendor_app).fetch_profile(profile_id)
    with vendor_app.transaction() as session:
        ticket_id = session.scalar(select(Ticket.id).where(Ticket.subject == "Where is my order 4711?"))
    assert ticket_id is not None
    queue_reply(vendor_app, 1, ticket_id, "Your parcel left today.")
    report = send_due(vendor_app)

    assert (fetched.error, fetched.listed, fetched.stored, fetched.deleted) == (None, 2, 2, 2)
    assert mailhub.folders["Inbox"] == {}  # stored, then deleted on the server
    assert (report.sent, report.failed) == (1, 0)
    assert [mail["to"] for mail in mailhub.sent] == [["carla.customer@example.org", "dan@gone.example"]]
    [row] = outbox_rows(vendor_app)
    [failure] = failure_rows(vendor_app)
    assert row.state == SendState.SENT
    assert (failure.recipient, failure.reply_code) == ("dan@gone.example", 550)
    assert failure.category == "addressing error"


def test_a_mail_the_vendor_server_refuses_whole_fails_and_a_wrong_password_fails_the_profile_test(
    vendor_app: Postroom, mailhub: MailhubServer
) -> None:
    mailhub.refuse_every_mail = (554, "5.7.1 Message refused as spam")
    desk = Desk(vendor_app)
    sending = desk.profile(
        "sending",
        send_protocol="mailhub-http",
        outgoing_host="127.0.0.1",
        outgoing_port=mailhub.port,
        username=USER,
        password=PASSWORD,
        allow_plaintext_login=True,
    )
    wrong = desk.profile(
        "wrong",
        fetch_protocol="mailhub-http",
        incoming_host="127.0.0.1",
        incoming_port=mailhub.port,
        username=USER,
        password="not-the-password",
        allow_plaintext_login=True,
    )

    queue_reply(vendor_app, 1, desk.ticket(sending), "Your parcel left today.")
    send_due(vendor_app)
    with vendor_app.transaction() as session:
        profile = session.get(MediaProfile, wrong)
        assert profile is not None
        checks = check_profile(profile, vendor_app.plugins)

    [failure] = failure_rows(vendor_app)
    assert (failure.recipient, failure.reply_code) == (None, 554)
    assert failure.text == "554 5.7.1 Message refused as spam"
    assert [(c.what, c.ok) for c in checks] == [("incoming", False)]
    assert f"Mailhub server 127.0.0.1:{mailhub.port} refused the login {USER!r}" in checks[0].detail
    assert "not-the-password" not in checks[0].detail


def test_the_vendor_protocol_over_plain_http_sends_no_login_unless_the_profile_allows_it(
    vendor_app: Postroom, mailhub: MailhubServer
) -> None:
    desk = Desk(vendor_app)
    hub = {"incoming_host": "127.0.0.1", "incoming_port": mailhub.port, "username": USER, "password": PASSWORD}
    profile_id = desk.profile("appliance", fetch_protocol="mailhub-http", **hub)

    refused = Fetcher(vendor_app).fetch_profile(profile_id)

    assert refused.error is not None
    assert "'postroom profile modify appliance --allow-plaintext-login'" in refused.error
    assert mailhub.authorizations == []
    with vendor_app.transaction() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        profile.allow_plaintext_login = True
    assert Fetcher(vendor_app).fetch_profile(profile_id).error is None
    assert len(mailhub.authorizations) > 0
