"""Failure mail (bounces): telling one from a customer's mail, and putting it where an agent sees it.

A bounce is mail from a configured failure-mail address, or mail the bounce readers (hook
``postroom_read_bounce``) read as a failed delivery of a reply postroom sent - whatever its format
and whoever sends it, null sender included: one that is about our own mail must not open a ticket
for "postmaster". It lands on the ticket of the reply it returns, else of the customer whose address
failed. Only a hard failure (unknown user, unknown host, refused ...) escalates that ticket; a soft
one (mailbox full, expired ...) is recorded on the reply and the ticket without the escalation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.bounces import FailedRecipient
from postroom.core.contract.mail import ParsedMail
from postroom.core.contract.routing import RouteChoice
from postroom.core.data.columns import fit
from postroom.core.data.directory import find_customer_by_address
from postroom.core.data.models import Customer, MediaProfile, Message, SMessageSendInfo, Ticket, utcnow
from postroom.core.data.tickets import (
    append_message,
    escalate,
    follow_merges,
    latest_open_ticket_for_customer,
)
from postroom.core.mail.bounces import BounceReading, read_bounce
from postroom.core.plugin_host import PluginHost

HARD_TAG, SOFT_TAG = "bounce-hard", "bounce-soft"


@dataclass
class FailureMail:
    """A mail found to be a bounce: what the readers made of it, and the replies of ours it returns."""

    reading: BounceReading
    replies: list[SMessageSendInfo]

    @property
    def recipients(self) -> list[FailedRecipient]:
        return self.reading.recipients

    @property
    def hard(self) -> bool:
        """Escalates: a hard failure, or a bounce from a failure-mail address that names nobody readable."""
        return not self.recipients or any(r.hard for r in self.recipients)


def read_failure_mail(
    session: Session, plugins: PluginHost, profile: MediaProfile, parsed: ParsedMail, failure_addresses: set[str]
) -> FailureMail | None:
    """The bounce ``parsed`` is, or None: from a configured address, or a failed delivery of our reply.

    Our replies are those of the profile's contact centre. A delay notice or a report about somebody
    else's mail, from anyone else, is ordinary mail.
    """
    reading = read_bounce(parsed, plugins.read_bounce)
    replies: list[SMessageSendInfo] = []
    if reading.recipients and reading.merged is not None and reading.merged.original_message_ids:
        replies = list(
            session.scalars(
                select(SMessageSendInfo)
                .join(Ticket, Ticket.id == SMessageSendInfo.ticket_id)
                .where(
                    SMessageSendInfo.message_id.in_(reading.merged.original_message_ids),
                    Ticket.contact_center_id == profile.contact_center_id,
                )
                .order_by(SMessageSendInfo.id)
            )
        )
    configured = bool(parsed.from_address and parsed.from_address in failure_addresses)
    return FailureMail(reading, replies) if configured or replies else None


def _describe(recipient: FailedRecipient) -> str:
    how = "hard" if recipient.hard else "soft"
    return f"{recipient.address} ({recipient.status or 'no status code'}, {recipient.reason}, {how})"


def _customer(session: Session, profile: MediaProfile, recipients: list[FailedRecipient]) -> Customer | None:
    for recipient in recipients:
        customer = find_customer_by_address(session, profile.contact_center_id, recipient.address)
        if customer is not None:
            return customer
    return None


def _escalate_other_customers(
    session: Session, profile: MediaProfile, route: RouteChoice, hard_ones: list[FailedRecipient], done: Ticket
) -> None:
    """A bounce naming several dead addresses escalates each of their customers' open tickets."""
    for recipient in hard_ones:
        customer = find_customer_by_address(session, profile.contact_center_id, recipient.address)
        if customer is None:
            continue
        other = latest_open_ticket_for_customer(session, route.campaign_id, customer.id)
        if other is not None and other.id != done.id and not other.escalated:
            escalate(session, other, f"Delivery failed for {_describe(recipient)}.")


def handle_failure_mail(
    session: Session,
    profile: MediaProfile,
    message: Message,
    parsed: ParsedMail,
    route: RouteChoice,
    failure: FailureMail,
    *,
    customer_based: bool,
    new_ticket: Callable[[], Ticket],
) -> None:
    """Put the bounce on its ticket: the bounced reply's, else the failed customer's (``customer_based``
    resolvers), else a new one (``new_ticket``, for the customer set on ``message``); escalate if hard.
    """
    message.is_failure_mail = True
    recipients = failure.recipients
    hard_ones = [r for r in recipients if r.hard]
    customer = _customer(session, profile, hard_ones) or _customer(session, profile, recipients)
    message.customer_id = customer.id if customer else None
    ticket = None
    for reply in failure.replies:
        if reply.ticket_id is not None and (found := session.get(Ticket, reply.ticket_id)) is not None:
            ticket = follow_merges(session, found)
            break
    if ticket is None and customer_based and customer is not None:
        ticket = latest_open_ticket_for_customer(session, route.campaign_id, customer.id)
    if ticket is None:
        ticket = new_ticket()
    append_message(session, ticket, message)
    tags = [t for t in (message.tags or "").split(",") if t]
    message.tags = ",".join(dict.fromkeys([*tags, HARD_TAG if failure.hard else SOFT_TAG]))
    summary = "; ".join(_describe(r) for r in recipients) or "an unknown recipient"
    if failure.hard:
        escalate(session, ticket, f"Delivery failed for {summary}.")
        if customer_based:
            _escalate_other_customers(session, profile, route, hard_ones, ticket)
    record = fit(SMessageSendInfo.bounce_text, f"{'Bounced' if failure.hard else 'Soft bounce'}: {summary}\n\n"
                 f"{parsed.text or parsed.subject or ''}")
    for reply in failure.replies:
        reply.bounce_text = record
        if failure.hard:
            reply.bounced_at = utcnow()
    message.reason = None
    events.emit(
        events.failure_mail_received,
        handle_failure_mail,
        profile_id=profile.id,
        message_pk=message.id,
        recipients=[r.address for r in recipients],
        hard=failure.hard,
        ticket_id=ticket.id,
    )
