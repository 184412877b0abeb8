"""The desk harness: a contact centre with campaign Support and queue First line, profiles routed into
it, customers' mail stored through the real inbound pipeline; and profiles on the test Dovecot made
with ``postroom profile add``, as an operator would.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, add_campaign, add_queue, get_queue
from postroom.core.data.models import Campaign, MediaProfile, Message, Queue
from postroom.core.data.profiles import ProfileFields, create_profile, get_profile, set_resolvers
from postroom.core.data.rules import add_rule
from postroom.core.inbound.pipeline import InboundPipeline
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpEndpoint
from tests.support.cli import Cli
from tests.support.mail import make_mail

CUSTOMER = "carla.customer@example.org"

#: The mail :meth:`Desk.ticket` stores unless a test says otherwise: a customer asks about her order.
CUSTOMER_MAIL: dict[str, Any] = {
    "subject": "Where is my order 4711?",
    "sender": f"Carla Customer <{CUSTOMER}>",
    "to": "support@postroom.test",
    "date": datetime(2031, 3, 3, 9, 30, tzinfo=UTC),
    "body": "Hello,\nmy parcel has not arrived.\nCarla\n",
}

#: ACME's support desk, as :meth:`Desk.setup` makes it: its subject prefix and the sender of its replies.
ACME_SUPPORT: dict[str, Any] = {
    "subject_prefix": "[ACME]",
    "send_from_address": "support@acme.test",
    "send_from_name": "ACME Support",
}


class Desk:
    """Contact centre 1 with campaign Support and its queue First line (made unless there).

    ``profile`` and ``smtp_profile`` add profiles whose routing rule sends their mail there; ``setup``
    adds ACME's profile ``support`` with ``resolvers``. ``ticket`` and ``deliver`` store a mail as a
    fetch cycle would: the first gives the ticket it landed on, the second the stored message.
    """

    def __init__(self, app: Postroom, resolvers: Sequence[str] = ()) -> None:
        self.app = app
        self.resolvers = list(resolvers)
        with app.transaction() as session:
            campaign = session.scalar(
                select(Campaign).where(
                    Campaign.contact_center_id == DEFAULT_CONTACT_CENTER_ID, Campaign.name == "Support"
                )
            )
            if campaign is None:
                campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "Support")
                queue = add_queue(session, campaign, "First line")
            else:
                queue = get_queue(session, campaign, "First line")
            self.campaign_id, self.queue_id = campaign.id, queue.id

    def profile(self, name: str, *, resolvers: Sequence[str] = (), routed: bool = True, **values: Any) -> int:
        """A profile (``values`` are :class:`ProfileFields`; it sends as ``NAME@postroom.test`` and does
        not verify certificates unless told), with ``resolvers``, routed into the campaign unless not."""
        values.setdefault("send_from_address", f"{name}@postroom.test")
        values.setdefault("tls_verify", False)
        with self.app.transaction() as session:
            profile = create_profile(
                session, self.app.plugins, DEFAULT_CONTACT_CENTER_ID, name, ProfileFields(**values)
            )
            if resolvers:
                set_resolvers(session, self.app.plugins, profile, list(resolvers))
            if routed:
                self._route(session, profile)
            return profile.id

    def smtp_profile(self, name: str, endpoint: SmtpEndpoint, **values: Any) -> int:
        """A profile sending through one of the aiosmtpd test servers."""
        if endpoint.username:
            values.setdefault("username", endpoint.username)
            values.setdefault("password", endpoint.password)
        return self.profile(
            name,
            send_protocol=endpoint.protocol,
            outgoing_host=endpoint.host,
            outgoing_port=endpoint.port,
            **values,
        )

    def route(self, profile_name: str) -> None:
        """A routing rule sending the mail of profile ``profile_name`` to campaign Support, queue First line."""
        with self.app.transaction() as session:
            self._route(session, get_profile(session, profile_name, DEFAULT_CONTACT_CENTER_ID))

    def setup(self, with_rule: bool = True) -> Desk:
        """ACME's profile ``support`` (see ``ACME_SUPPORT``) with the desk's resolvers."""
        self.profile("support", resolvers=self.resolvers, routed=with_rule, **ACME_SUPPORT)
        return self

    def add_profile(self, name: str) -> None:
        """One more ACME profile (prefix [ACME]) with the desk's resolvers, routed into the campaign."""
        self.profile(name, resolvers=self.resolvers, subject_prefix=ACME_SUPPORT["subject_prefix"])

    def deliver(self, raw: bytes, profile_name: str | None = None) -> Message:
        """Store one mail through the real pipeline (profile ``support`` unless another is named), as a
        fetch batch would, and return its row."""
        with self.app.transaction() as session:
            profile = get_profile(session, profile_name or "support", DEFAULT_CONTACT_CENTER_ID)
            return self._store(session, profile, raw)

    def ticket(self, profile_id: int, raw: bytes | None = None, **mail: Any) -> int:
        """Store a customer's mail (``raw``, or ``CUSTOMER_MAIL`` changed by ``mail``); its ticket's id."""
        with self.app.transaction() as session:
            profile = session.get(MediaProfile, profile_id)
            assert profile is not None
            ticket_id = self._store(session, profile, raw or make_mail(**{**CUSTOMER_MAIL, **mail})).ticket_id
        assert ticket_id is not None, "the mail was not routed onto a ticket"
        return ticket_id

    def _route(self, session: Session, profile: MediaProfile) -> None:
        campaign, queue = session.get(Campaign, self.campaign_id), session.get(Queue, self.queue_id)
        assert campaign is not None and queue is not None
        add_rule(session, profile, campaign, queue)

    def _store(self, session: Session, profile: MediaProfile, raw: bytes) -> Message:
        # Every mail gets a fetch key of its own: the ledger would take a repeated key for a repeated fetch.
        result = InboundPipeline(session, self.app.plugins, profile).store(f"desk-{uuid.uuid4().hex}", raw)
        message = session.get(Message, result.message_pk)
        assert message is not None, "the mail was not stored"
        return message


def add_dovecot_profile(
    cli: Cli,
    dovecot: Dovecot,
    user: str,
    protocol: str = "imap",
    *options: str,
    name: str = "support",
    password: str | None = None,
    tls_verify: bool = False,
) -> None:
    """``postroom profile add NAME ... OPTIONS`` for ``user``'s inbox on the test Dovecot over ``protocol``.

    Verification is off unless asked for, because the test server's certificate is self-signed.
    The password goes in on standard input, as an operator's script would give it. The profile has no
    routing rule: :meth:`Desk.route` adds one.
    """
    cli.ok(
        "profile",
        "add",
        name,
        "--username",
        user,
        "--password-stdin",
        "--fetch-protocol",
        protocol,
        "--incoming-host",
        dovecot.host,
        "--incoming-port",
        str(dovecot.port_for(protocol)),
        *([] if tls_verify else ["--no-tls-verify"]),
        *options,
        input=(dovecot.passwords[user] if password is None else password) + "\n",
    )
