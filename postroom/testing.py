"""A test helper for plugin authors: postroom on a temporary SQLite database, no server needed.

::

    from postroom.testing import make_desk

    def test_my_resolver_keeps_the_order_on_its_ticket():
        with make_desk(resolvers=["order-number"]) as desk:
            first = desk.receive(b"From: a@example.org\\r\\nSubject: Order 123\\r\\n\\r\\nHello")
            again = desk.receive(b"From: b@example.org\\r\\nSubject: about 123\\r\\n\\r\\nMe again")
            assert again.id == first.id

:func:`make_desk` makes what a fetch needs (contact centre 1, campaign ``Support``, queue
``First line``, a profile routed into them) with every installed plugin (yours, once
``pip install -e .`` put it in the environment) plus any given as ``plugins``, and
:meth:`Desk.receive` runs a raw mail through the same inbound pipeline a fetch uses: parse,
de-duplicate, store, inbound filters, routing, resolvers. :meth:`Desk.send_failure` shows what the
classifier and the category → policy table make of a failed send. docs/plugins/testing.md has more.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.contract.protocols import FailureKind, SendFailure
from postroom.core.contract.retry import RetrySettings
from postroom.core.data import retry_policies
from postroom.core.data.configuration import retry_settings, set_retry_settings
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, add_campaign, add_queue
from postroom.core.data.models import MediaProfile, Message, MessageRaw, SMessageSendInfo, Ticket, utcnow
from postroom.core.data.plugin_data import ticket_attributes
from postroom.core.data.profiles import ProfileFields, create_profile, set_resolvers
from postroom.core.data.rules import add_rule
from postroom.core.inbound.fetch import Fetcher, FetchReport
from postroom.core.inbound.pipeline import InboundPipeline
from postroom.core.outbound.classification import classify
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.decision import ClaimedReply, Outcome, decide

__all__ = ["CliOutcome", "Desk", "FailureVerdict", "make_desk"]


@dataclass(frozen=True)
class FailureVerdict:
    """What postroom makes of one failed send: its category, the policy that decided, the next try."""

    category: str
    policy: str
    retry_at: datetime | None


@dataclass(frozen=True)
class CliOutcome:
    """What a ``postroom`` command line printed, and its exit code."""

    exit_code: int
    stdout: str
    stderr: str


class Desk:
    """A postroom on a temporary database with one profile; made by :func:`make_desk`."""

    def __init__(self, app: Postroom, profile_id: int) -> None:
        #: The application (``desk.app.transaction()`` opens a committed session).
        self.app = app
        self.profile_id = profile_id

    def receive(self, raw: bytes | str) -> Ticket | None:
        """Run one raw mail through the inbound pipeline; the ticket it landed on, or None.

        None means the mail is not on a ticket: held by a filter, unrouted, or quarantined
        (:meth:`last_message` says which, and why). The ticket is detached but fully loaded.
        """
        message = self.deliver(raw)
        if message.ticket_id is None:
            return None
        with self.app.transaction() as session:
            return session.get(Ticket, message.ticket_id)

    def deliver(self, raw: bytes | str) -> Message:
        """Like :meth:`receive`, but return the stored message row (its ``status``, ``reason``, ``tags``)."""
        data = raw.encode() if isinstance(raw, str) else raw
        with self.app.transaction() as session:
            profile = self.profile(session)
            # A fetch key of its own for every mail: the ledger takes a repeated key for a repeated fetch.
            result = InboundPipeline(session, self.app.plugins, profile).store(
                f"test-{uuid.uuid4().hex}", data
            )
            message = session.get(Message, result.message_pk)
            assert message is not None, f"the mail was not stored ({result.outcome})"
            return message

    def fetch(self) -> FetchReport:
        """One fetch cycle of the desk's profile (its fetch protocol reads its mailbox), as ``postroom fetch``."""
        return Fetcher(self.app).fetch_profile(self.profile_id)

    def tickets(self) -> list[Ticket]:
        """Every ticket, oldest first (detached, loaded)."""
        with self.app.transaction() as session:
            return list(session.scalars(select(Ticket).order_by(Ticket.id)))

    def messages(self) -> list[Message]:
        """Every stored message, oldest first (detached, loaded)."""
        with self.app.transaction() as session:
            return list(session.scalars(select(Message).order_by(Message.id)))

    def reply(self, ticket: Ticket | int, body: str, *, agent: str | None = None) -> EmailMessage:
        """An agent's reply on a ticket, composed (``postroom_compose_outgoing`` hooks included) and
        queued as ``postroom ticket reply`` does; the mail as it will go out, parsed."""
        queued = queue_reply(
            self.app,
            DEFAULT_CONTACT_CENTER_ID,
            ticket if isinstance(ticket, int) else ticket.id,
            body,
            agent_name=agent,
        )
        with self.app.transaction() as session:
            row = session.get(SMessageSendInfo, queued.send_info_id)
            assert row is not None
            raw = session.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == row.message_pk))
        assert raw is not None
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def cli(self, *args: str) -> CliOutcome:
        """``postroom ARGS`` against the desk's database, in-process (plugin commands included)."""
        from click.testing import CliRunner

        from postroom.cli import cli

        url = self.app.engine.url.render_as_string(hide_password=False)
        result = CliRunner().invoke(cli, ["--database-url", url, *args], catch_exceptions=False)
        return CliOutcome(result.exit_code, result.stdout, result.stderr)

    def profile(self, session: Session) -> MediaProfile:
        """The desk's profile in ``session``."""
        profile = session.get(MediaProfile, self.profile_id)
        assert profile is not None
        return profile

    def attributes(self, ticket: Ticket | int, plugin: str) -> dict[str, str]:
        """Every attribute ``plugin`` keeps on a ticket."""
        with self.app.transaction() as session:
            found = session.get(Ticket, ticket if isinstance(ticket, int) else ticket.id)
            assert found is not None
            return ticket_attributes(session, found, plugin)

    def choose_policy(self, category: str, policy: str) -> None:
        """``postroom retry set-policy CATEGORY POLICY --profile <the desk's profile>``."""
        with self.app.transaction() as session:
            retry_policies.set_policy(
                session,
                DEFAULT_CONTACT_CENTER_ID,
                category,
                policy,
                set(self.app.plugins.policies),
                self.profile(session),
            )

    def send_failure(
        self,
        text: str,
        *,
        reply_code: int | None = None,
        kind: FailureKind = "protocol",
        recipient: str | None = None,
        retries_done: int = 0,
        now: datetime | None = None,
    ) -> FailureVerdict:
        """What the outbox would make of a failed send of a reply through the desk's profile.

        The classifier hook chooses the category, the profile's category → policy table the
        policy, and the policy the next attempt, exactly as after a real send; nothing is stored.
        """
        when = now or utcnow()
        with self.app.transaction() as session:
            profile = self.profile(session)
            failure = classify(
                self.app.plugins,
                SendFailure(text, reply_code=reply_code, kind=kind, recipient=recipient),
                profile,
                recipient,
            )
            settings = retry_settings(session, profile.id)
            names = retry_policies.policy_names_for_profile(session, profile.id)
        reply = ClaimedReply(
            id=0,
            profile_id=self.profile_id,
            attempts=retries_done,
            pending_recipients=(recipient or "customer@example.org",),
            sent_at=None,
        )
        transition = decide(
            reply,
            Outcome(failures=(failure,)),
            settings,
            policy_names=names,
            find_policy=self.app.plugins.policy,
            now=when,
        )
        record = transition.failure_records[0]
        return FailureVerdict(record.category, record.policy, record.next_attempt_at)

    def set_retry_settings(self, **values: int) -> RetrySettings:
        """``postroom profile retry``: the desk profile's ``max_retry_count`` and intervals."""
        with self.app.transaction() as session:
            return set_retry_settings(session, self.profile(session), **values)


@contextmanager
def make_desk(
    *,
    resolvers: Sequence[str] = ("case-id",),
    plugins: Iterable[tuple[str, object]] = (),
    subject_prefix: str = "[Support]",
    database_url: str | None = None,
    **fields: Any,
) -> Iterator[Desk]:
    """A postroom with one profile, ``support``, whose mail is routed to campaign Support, queue First line.

    :param resolvers: the profile's ticket resolvers, in priority order (as ``--resolver``).
    :param plugins: plugin objects to register besides the installed ones, as ``(name, module)``.
    :param subject_prefix: the profile's subject prefix.
    :param database_url: a database to use instead of a temporary SQLite file (it gets the schema).
    :param fields: more of the profile's fields, as ``postroom profile add`` takes them
        (:class:`postroom.core.data.profiles.ProfileFields`: ``fetch_protocol="mbox"``,
        ``incoming_folder=...``); by default it fetches nothing and sends through SMTP, so a
        failed send can be classified.
    """
    with tempfile.TemporaryDirectory(prefix="postroom-test-") as home:
        app = Postroom(database_url or f"sqlite:///{Path(home) / 'postroom.sqlite'}", extra_plugins=plugins)
        try:
            app.init()
            with app.transaction() as session:
                campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "Support")
                queue = add_queue(session, campaign, "First line")
                profile = create_profile(
                    session,
                    app.plugins,
                    DEFAULT_CONTACT_CENTER_ID,
                    "support",
                    ProfileFields(
                        **{
                            "send_from_address": "support@postroom.test",
                            "send_from_name": "Support",
                            "subject_prefix": subject_prefix,
                            "send_protocol": "smtp",
                            "outgoing_host": "smtp.postroom.test",
                            **fields,
                        }
                    ),
                )
                set_resolvers(session, app.plugins, profile, list(resolvers))
                add_rule(session, profile, campaign, queue)
                profile_id = profile.id
            yield Desk(app, profile_id)
        finally:
            app.dispose()
