"""Failure mail (bounces): telling one from a customer's mail, and escalating the ticket it concerns.

A bounce is mail from a configured failure-mail address, or a delivery status notification
about a mail postroom sent. It never opens a ticket for "postmaster": it lands on the ticket of
the customer whose address failed, escalated, and marks the outbox row it reports as bounced.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.mail import ParsedMail
from postroom.core.contract.routing import RouteChoice
from postroom.core.data.columns import fit
from postroom.core.data.directory import find_customer_by_address
from postroom.core.data.models import MediaProfile, Message, SMessageSendInfo, Ticket, utcnow
from postroom.core.data.tickets import append_message, escalate, latest_open_ticket_for_customer
from postroom.core.mail.bounces import bounced_message_ids, failed_recipients, reported_failures


def is_failure_mail(session: Session, parsed: ParsedMail, failure_addresses: set[str]) -> bool:
    """A bounce: from a configured failure-mail address, or a report that a mail postroom sent failed.

    The second kind is a delivery status notification (RFC 3464, ``multipart/report;
    report-type=delivery-status``) naming a failed recipient and the Message-ID of a reply in
    the outbox. Bounces come from more servers than anyone configures; one that is about our
    own mail is a bounce whoever sends it, and must not open a ticket for "postmaster".
    """
    if parsed.from_address and parsed.from_address in failure_addresses:
        return True
    report = parsed.headers
    if report.get_content_type() != "multipart/report":
        return False
    if str(report.get_param("report-type", "")).lower() != "delivery-status":
        return False
    original_ids = bounced_message_ids(parsed.raw)
    if not original_ids or not reported_failures(parsed.raw):
        return False  # a delay or delivery notice, or about somebody else's mail
    ours = select(SMessageSendInfo.id).where(SMessageSendInfo.message_id.in_(original_ids)).limit(1)
    return session.scalar(ours) is not None


def handle_failure_mail(
    session: Session,
    profile: MediaProfile,
    message: Message,
    parsed: ParsedMail,
    route: RouteChoice,
    *,
    customer_based: bool,
    new_ticket: Callable[[], Ticket],
) -> None:
    """Escalate the customer's open ticket (``customer_based`` resolvers) or open an escalated one.

    ``new_ticket`` makes the ticket of the mail where routing put it, for the customer set on ``message``.
    """
    message.is_failure_mail = True
    recipients = failed_recipients(parsed.raw)
    customer = next(
        (c for a in recipients if (c := find_customer_by_address(session, profile.contact_center_id, a))),
        None,
    )
    message.customer_id = customer.id if customer else None
    ticket = None
    if customer_based and customer is not None:
        ticket = latest_open_ticket_for_customer(session, route.campaign_id, customer.id)
    if ticket is None:
        ticket = new_ticket()
    append_message(session, ticket, message)
    escalate(session, ticket, f"Delivery failed for {', '.join(recipients) or 'an unknown recipient'}.")
    original_ids = bounced_message_ids(parsed.raw)
    if original_ids:
        session.execute(
            update(SMessageSendInfo)
            .where(SMessageSendInfo.message_id.in_(original_ids))
            .values(
                bounced_at=utcnow(),
                bounce_text=fit(SMessageSendInfo.bounce_text, parsed.text or parsed.subject or ""),
            )
        )
    message.reason = None
    events.emit(
        events.failure_mail_received,
        handle_failure_mail,
        profile_id=profile.id,
        message_pk=message.id,
        recipients=recipients,
        ticket_id=ticket.id,
    )
