"""Tickets for the agent pages' tests, in the live console's database: queues, a profile per queue that
sends through a real aiosmtpd server, and customers' mail stored through the real inbound pipeline.

The live console's database is shared by the whole session, so every name made here is unique.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from selenium import webdriver

from postroom.core.app import Postroom
from postroom.core.data import directory
from postroom.core.data.models import MediaProfile, Message
from postroom.core.data.profiles import ProfileFields, create_profile, set_resolvers, set_signature
from postroom.core.data.rules import add_rule
from postroom.core.inbound.pipeline import InboundPipeline
from tests.servers.smtp import SmtpEndpoint

CC = directory.DEFAULT_CONTACT_CENTER_ID


@dataclass(frozen=True)
class Stored:
    """A stored customer's mail: the ticket it landed on and its message row's id."""

    ticket_id: int
    message_pk: int


class AgentDesk:
    """A queue ``CAMPAIGN/QUEUE`` of unique names with its own profile (prefix ``[ACME]``, a signature),
    routed into it, sending through ``endpoint``."""

    def __init__(self, app: Postroom, endpoint: SmtpEndpoint) -> None:
        self.app = app
        tag = uuid.uuid4().hex[:8]
        self.campaign, self.queue = f"Care-{tag}", "First line"
        self.spec = f"{self.campaign}/{self.queue}"
        self.profile_name = f"support-{tag}"
        self.address = f"support-{tag}@acme.test"
        with app.transaction() as session:
            campaign = directory.add_campaign(session, CC, self.campaign)
            queue = directory.add_queue(session, campaign, self.queue)
            profile = create_profile(
                session,
                app.plugins,
                CC,
                self.profile_name,
                ProfileFields(
                    send_protocol=endpoint.protocol,
                    outgoing_host=endpoint.host,
                    outgoing_port=endpoint.port,
                    send_from_address=self.address,
                    send_from_name="ACME Support",
                    subject_prefix="[ACME]",
                    tls_verify=False,
                ),
            )
            set_signature(profile, "<p>Kind regards, {agent_name}</p>", "before")
            # A customer's next mail joins their open ticket (the demo's resolvers).
            set_resolvers(session, app.plugins, profile, ["case-id", "customer"])
            add_rule(session, profile, campaign, queue)
            self.profile_id, self.queue_id = profile.id, queue.id

    def mail(
        self,
        subject: str,
        *,
        sender: str | None = None,
        body: str = "Hello,\nmy parcel has not arrived.\n",
        attachments: tuple[tuple[str, str, bytes], ...] = (),
        headers: dict[str, str] | None = None,
    ) -> Stored:
        """Store a customer's mail (with ``(name, type, bytes)`` attachments) as a fetch would; from a
        new customer of her own unless ``sender`` is given (then it joins that customer's open ticket)."""
        mail = EmailMessage()
        mail["From"] = sender or new_customer()
        mail["To"] = self.address
        mail["Subject"] = subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = make_msgid(domain="example.org")
        for name, value in (headers or {}).items():
            mail[name] = value
        mail.set_content(body)
        for filename, content_type, data in attachments:
            maintype, _, subtype = content_type.partition("/")
            mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        with self.app.transaction() as session:
            profile = session.get(MediaProfile, self.profile_id)
            assert profile is not None
            result = InboundPipeline(session, self.app.plugins, profile).store(
                f"web-{uuid.uuid4().hex}", mail.as_bytes()
            )
            message = session.get(Message, result.message_pk)
            assert message is not None and message.ticket_id is not None, "the mail made no ticket"
            return Stored(message.ticket_id, message.id)


def new_customer(name: str = "Carla Customer") -> str:
    """A sender no other mail of the session has used: ``Name <name-TAG@example.org>``."""
    local = name.lower().replace(" ", ".")
    return f"{name} <{local}-{uuid.uuid4().hex[:8]}@example.org>"


def csrf_token(driver: webdriver.Chrome) -> str:
    """The CSRF token of the page the browser shows."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', driver.page_source)
    assert found, "the page has no form"
    return found.group(1)


def download(driver: webdriver.Chrome, url: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` with the browser's cookies: status, headers and the bytes (for downloads)."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
