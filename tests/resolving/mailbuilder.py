"""Generated mails for routing and resolving tests, and a pipeline harness that stores them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data import directory, profiles, rules
from postroom.core.data.models import MediaProfile, Message
from postroom.core.data.profiles import ProfileFields
from postroom.core.inbound.pipeline import InboundPipeline

_counter = itertools.count(1)


def make_mail(
    sender: str,
    subject: str,
    *,
    to: str = "support@acme.test",
    cc: list[str] | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    body: str = "Hello, please help.\n",
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    if cc:
        mail["Cc"] = ", ".join(cc)
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    mail["Message-ID"] = f"<{message_id or f'gen-{next(_counter)}@customer.test'}>"
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        mail["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail.as_bytes()


@dataclass
class Desk:
    """One contact centre set up for resolving: profile ``support`` (prefix [ACME]), campaign, queue, rule."""

    app: Postroom
    resolvers: list[str]
    profile_name: str = "support"
    keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def setup(self, with_rule: bool = True) -> Desk:
        with self.app.transaction() as session:
            profile = profiles.create_profile(
                session,
                self.app.plugins,
                1,
                self.profile_name,
                ProfileFields(
                    subject_prefix="[ACME]",
                    send_from_address="support@acme.test",
                    send_from_name="ACME Support",
                ),
            )
            if self.resolvers:
                profiles.set_resolvers(session, self.app.plugins, profile, self.resolvers)
            campaign = directory.add_campaign(session, 1, "Support")
            queue = directory.add_queue(session, campaign, "First line")
            if with_rule:
                rules.add_rule(session, profile, campaign, queue)
        return self

    def add_profile(self, name: str) -> None:
        with self.app.transaction() as session:
            source = profiles.get_profile(session, self.profile_name, 1)
            profile = profiles.create_profile(
                session, self.app.plugins, 1, name, ProfileFields(subject_prefix="[ACME]")
            )
            profiles.set_resolvers(
                session, self.app.plugins, profile, [r.resolver_name for r in source.resolvers]
            )
            campaign = directory.get_campaign(session, 1, "Support")
            rules.add_rule(session, profile, campaign, campaign.queues[0])

    def deliver(self, raw: bytes, profile_name: str | None = None) -> Message:
        """Store one mail through the real pipeline, as a fetch batch would, and return its row."""
        with self.app.transaction() as session:
            profile = profiles.get_profile(session, profile_name or self.profile_name, 1)
            result = InboundPipeline(session, self.app.plugins, profile).store(f"key-{next(self.keys)}", raw)
            message = session.get(Message, result.message_pk)
            assert message is not None
            return message

    def profile(self) -> MediaProfile:
        with self.app.transaction() as session:
            found = session.scalar(select(MediaProfile).where(MediaProfile.name == self.profile_name))
            assert found is not None
            return found
