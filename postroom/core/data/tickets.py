"""Tickets: create, append, close, merge, split, escalate, and the indexed lookups resolvers use."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data.columns import fit
from postroom.core.data.messages import stored_addresses
from postroom.core.data.models import (
    Campaign,
    Direction,
    MediaProfile,
    Message,
    MessageAddress,
    MessageStatus,
    Queue,
    Ticket,
    TicketState,
    utcnow,
)
from postroom.core.data.profiles import profile_names
from postroom.core.mail.subjects import format_case_token, normalise_subject

#: How many ``merged_into`` hops are followed before giving up (a cycle is a bug, not a reason to hang).
MAX_MERGE_HOPS = 16
#: How many of a mail's thread Message-IDs (In-Reply-To, then References newest first) are looked at.
THREAD_IDS = 50


# --- lookups (each served by an index on ticket or message) -----------------------------------


def _open_in_campaign(campaign_id: int) -> Any:
    """Candidates: open tickets, and merged ones (the caller follows them to the ticket they were merged into)."""
    return select(Ticket).where(
        Ticket.campaign_id == campaign_id, Ticket.state.in_((TicketState.OPEN, TicketState.MERGED))
    )


def latest_open_ticket_for_customer(
    session: Session, campaign_id: int, customer_id: int, profile_id: int | None = None
) -> Ticket | None:
    """The customer's most recently active open ticket (of one source profile, if given)."""
    query = _open_in_campaign(campaign_id).where(Ticket.customer_id == customer_id)
    if profile_id is not None:
        query = query.where(Ticket.source_profile_id == profile_id)
    ticket: Ticket | None = session.scalar(
        query.order_by(Ticket.last_activity_at.desc(), Ticket.id.desc()).limit(1)
    )
    return ticket


def latest_open_ticket_for_subject(
    session: Session,
    campaign_id: int,
    normalised: str,
    customer_id: int | None = None,
    profile_id: int | None = None,
) -> Ticket | None:
    """The most recently active open ticket with this normalised subject (of a customer/profile, if given)."""
    if not normalised:
        return None
    query = _open_in_campaign(campaign_id).where(
        Ticket.normalised_subject == fit(Ticket.normalised_subject, normalised)
    )
    if customer_id is not None:
        query = query.where(Ticket.customer_id == customer_id)
    if profile_id is not None:
        query = query.where(Ticket.source_profile_id == profile_id)
    ticket: Ticket | None = session.scalar(
        query.order_by(Ticket.last_activity_at.desc(), Ticket.id.desc()).limit(1)
    )
    return ticket


def ticket_of_thread(session: Session, contact_center_id: int, message_ids: Sequence[str]) -> Ticket | None:
    """The ticket of the newest stored message (inbound or outbound) among ``message_ids``."""
    ids = [m for m in dict.fromkeys(message_ids) if m][:THREAD_IDS]
    if not ids:
        return None
    ticket_id = session.scalar(
        select(Message.ticket_id)
        .where(
            Message.message_id.in_(ids),
            Message.contact_center_id == contact_center_id,
            Message.ticket_id.is_not(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    return session.get(Ticket, ticket_id) if ticket_id is not None else None


def ticket_by_case_token(session: Session, contact_center_id: int, token: str) -> Ticket | None:
    return session.scalar(
        select(Ticket).where(Ticket.case_token == token, Ticket.contact_center_id == contact_center_id)
    )


def latest_open_ticket_observed_by(
    session: Session, campaign_id: int, normalised: str, observer: str
) -> Ticket | None:
    """An open ticket of this subject where ``observer`` was in Cc of a customer's (inbound) mail on it."""
    if not normalised or not observer:
        return None
    ticket: Ticket | None = session.scalar(
        select(Ticket)
        .join(Message, Message.ticket_id == Ticket.id)
        .join(MessageAddress, MessageAddress.message_pk == Message.id)
        .where(
            MessageAddress.address == observer.lower(),
            MessageAddress.role == "cc",
            Message.direction == Direction.INBOUND,
            Ticket.campaign_id == campaign_id,
            Ticket.state == TicketState.OPEN,
            Ticket.normalised_subject == fit(Ticket.normalised_subject, normalised),
        )
        .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    return ticket


def follow_merges(session: Session, ticket: Ticket) -> Ticket:
    """The ticket a merged ticket was (transitively) merged into."""
    current = ticket
    for _ in range(MAX_MERGE_HOPS):
        if current.merged_into_id is None:
            return current
        target = session.get(Ticket, current.merged_into_id)
        if target is None:
            return current
        current = target
    return current


# --- changes ----------------------------------------------------------------------------------


def create_ticket(
    session: Session,
    *,
    contact_center_id: int,
    campaign_id: int,
    queue_id: int | None,
    customer_id: int | None,
    profile: MediaProfile | None,
    subject: str,
    escalated: bool = False,
    deferred: bool = False,
) -> Ticket:
    """A new open ticket with its case token (``[#PR-<id>]``, or the profile's own prefix letters).

    ``deferred``: the ticket waits for the caller's next flush, which inserts the tickets of a whole
    batch in one statement; its id, in the signal too, is known from then on, and the caller gives
    it its case token with :func:`give_case_tokens`. Otherwise it is inserted here (one flush).
    """
    now = utcnow()
    ticket = Ticket(
        contact_center_id=contact_center_id,
        campaign_id=campaign_id,
        queue_id=queue_id,
        customer_id=customer_id,
        source_profile_id=profile.id if profile else None,
        subject=subject,
        normalised_subject=fit(
            Ticket.normalised_subject, normalise_subject(subject, profile.subject_prefix if profile else None)
        ),
        state=TicketState.OPEN,
        escalated=escalated,
        created_at=now,
        last_activity_at=now,
    )
    session.add(ticket)
    if not deferred:
        session.flush()  # the id names the case token; the token itself goes out with the next flush
        ticket.case_token = format_case_token(None, ticket.id)
    events.emit(
        events.ticket_created,
        create_ticket,
        ticket_id=_ticket_id(ticket),
        campaign_id=campaign_id,
        customer_id=customer_id,
    )
    return ticket


def give_case_tokens(session: Session, tickets: Sequence[Ticket]) -> None:
    """Insert the deferred tickets (one flush) and give each its case token.

    On PostgreSQL the new tickets' ids are drawn from the table's sequence first (one query), so
    that each row is inserted with its case token; elsewhere the token, which names the id the
    insert gave, is written with the next flush (an UPDATE per ticket).
    """
    if not tickets:
        return
    unnumbered = [ticket for ticket in tickets if ticket.id is None]
    if unnumbered and session.get_bind().dialect.name == "postgresql":
        for ticket, number in zip(unnumbered, _next_ticket_ids(session, len(unnumbered)), strict=True):
            ticket.id = number
            ticket.case_token = format_case_token(None, number)
    session.flush()
    for ticket in tickets:
        if ticket.case_token is None:
            ticket.case_token = format_case_token(None, ticket.id)


def _next_ticket_ids(session: Session, count: int) -> list[int]:
    """``count`` new ticket ids from the ticket table's sequence (PostgreSQL), in ascending order.

    Read without a flush first: the tickets being numbered are pending and must not be inserted yet.
    """
    table = Ticket.__tablename__
    with session.no_autoflush:
        return sorted(
            session.scalars(
                select(func.nextval(func.pg_get_serial_sequence(table, "id"))).select_from(
                    func.generate_series(1, count)
                )
            )
        )


def append_message(session: Session, ticket: Ticket, message: Message) -> None:
    if ticket.id is None:
        message.ticket = ticket  # a deferred ticket: the flush inserts it, then sets ticket_id
    else:
        message.ticket_id = ticket.id
    if message.direction == Direction.INBOUND:
        message.status = MessageStatus.TICKETED
    ticket.last_activity_at = utcnow()
    events.emit(events.ticket_updated, append_message, ticket_id=_ticket_id(ticket), change="appended")


def _ticket_id(ticket: Ticket) -> int | events.Later:
    """The ticket's id, or for a deferred ticket, its id as it will be once flushed (read at commit)."""
    return ticket.id if ticket.id is not None else events.Later(lambda: ticket.id)


def escalate(session: Session, ticket: Ticket, reason: str) -> None:
    ticket.escalated = True
    events.emit(events.ticket_escalated, escalate, ticket_id=ticket.id, reason=reason)


def get_ticket(session: Session, contact_center_id: int, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.contact_center_id != contact_center_id:
        raise NotFoundError(f"There is no ticket {ticket_id}.")
    return ticket


def close_ticket(session: Session, ticket: Ticket) -> None:
    if ticket.state == TicketState.MERGED:
        raise UserError(f"Ticket {ticket.id} was merged into ticket {ticket.merged_into_id}; close that one.")
    ticket.state = TicketState.CLOSED
    ticket.closed_at = utcnow()
    session.flush()
    events.emit(events.ticket_updated, close_ticket, ticket_id=ticket.id, change="closed")


def merge_tickets(session: Session, source: Ticket, target: Ticket) -> None:
    """Move every message of ``source`` onto ``target``; later mail for ``source`` follows to ``target``."""
    if source.id == target.id:
        raise UserError("A ticket cannot be merged into itself.")
    if follow_merges(session, target).id == source.id:
        raise UserError(f"Ticket {target.id} was merged into ticket {source.id}; merging back would loop.")
    if source.campaign_id != target.campaign_id:
        raise UserError(f"Tickets {source.id} and {target.id} belong to different campaigns.")
    session.execute(update(Message).where(Message.ticket_id == source.id).values(ticket_id=target.id))
    source.state = TicketState.MERGED
    source.merged_into_id = target.id
    target.escalated = target.escalated or source.escalated
    target.last_activity_at = max(target.last_activity_at, source.last_activity_at)
    session.flush()
    events.emit(events.ticket_updated, merge_tickets, ticket_id=source.id, change="merged")
    events.emit(events.ticket_updated, merge_tickets, ticket_id=target.id, change="merged")


def split_ticket(session: Session, ticket: Ticket, message_pks: Sequence[int]) -> Ticket:
    """Move the chosen messages to a new ticket; replies in their threads follow them there."""
    chosen = list(session.scalars(select(Message).where(Message.id.in_(message_pks)).order_by(Message.id)))
    missing = set(message_pks) - {m.id for m in chosen if m.ticket_id == ticket.id}
    if missing:
        raise UserError(f"Message {min(missing)} is not on ticket {ticket.id}.")
    remaining = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.ticket_id == ticket.id, Message.id.not_in(message_pks))
    )
    if not remaining:
        raise UserError("A split must leave at least one message on the original ticket.")
    # The new ticket belongs to whoever wrote the first chosen message, through the profile it came in on.
    first = chosen[0]
    profile_id = first.media_profile_id or ticket.source_profile_id
    profile = session.get(MediaProfile, profile_id) if profile_id else None
    new = create_ticket(
        session,
        contact_center_id=ticket.contact_center_id,
        campaign_id=ticket.campaign_id,
        queue_id=ticket.queue_id,
        customer_id=first.customer_id or ticket.customer_id,
        profile=profile,
        subject=first.subject or ticket.subject,
    )
    new.split_from_id = ticket.id
    for message in chosen:
        message.ticket_id = new.id
    session.flush()
    events.emit(events.ticket_updated, split_ticket, ticket_id=ticket.id, change="split")
    return new


def list_tickets(
    session: Session, contact_center_id: int, states: Sequence[str] = (), limit: int | None = None
) -> list[dict[str, Any]]:
    """Tickets as JSON documents, newest activity first, with their message counts from one grouped query."""
    query = select(Ticket).where(Ticket.contact_center_id == contact_center_id)
    if states:
        query = query.where(Ticket.state.in_(states))
    query = query.order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
    if limit is not None:
        query = query.limit(limit)
    tickets = session.scalars(query).all()
    counts = dict(
        session.execute(
            select(Message.ticket_id, func.count())
            .where(Message.ticket_id.in_([t.id for t in tickets]))
            .group_by(Message.ticket_id)
        ).all()
    )
    return [ticket_as_json(session, t, message_count=counts.get(t.id, 0)) for t in tickets]


def ticket_as_json(
    session: Session, ticket: Ticket, with_messages: bool = False, message_count: int | None = None
) -> dict[str, Any]:
    # session.get serves repeated campaigns, queues and profiles from the session's identity map.
    campaign = session.get(Campaign, ticket.campaign_id)
    queue = session.get(Queue, ticket.queue_id) if ticket.queue_id else None
    profile = session.get(MediaProfile, ticket.source_profile_id) if ticket.source_profile_id else None
    count = message_count
    if count is None:
        count = session.scalar(
            select(func.count()).select_from(Message).where(Message.ticket_id == ticket.id)
        )
    data: dict[str, Any] = {
        "id": ticket.id,
        "subject": ticket.subject,
        "state": ticket.state,
        "escalated": ticket.escalated,
        "customer_id": ticket.customer_id,
        "campaign": campaign.name if campaign else None,
        "queue": queue.name if queue else None,
        "source_profile": profile.name if profile else None,
        "merged_into": ticket.merged_into_id,
        "split_from": ticket.split_from_id,
        "case_token": ticket.case_token,
        "message_count": count,
        "created_at": ticket.created_at.isoformat(),
        "last_activity_at": ticket.last_activity_at.isoformat(),
    }
    if with_messages:
        messages = session.scalars(select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id))
        names = profile_names(session)
        data["messages"] = [message_as_json(m, names) for m in messages]
    return data


def message_as_json(message: Message, profile_names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "message_id": message.message_id,
        "from": message.from_address,
        "from_name": message.from_name,
        "to": stored_addresses(message.to_addresses),
        "cc": stored_addresses(message.cc_addresses),
        "reply_to": stored_addresses(message.reply_to),
        # An outgoing reply's recipients left out as unusable: [{"address", "reason"}].
        "skipped_recipients": json.loads(message.skipped_recipients or "[]"),
        "subject": message.subject,
        "date": message.sent_date.isoformat() if message.sent_date else None,
        "profile": profile_names.get(message.media_profile_id) if message.media_profile_id else None,
        "is_failure_mail": message.is_failure_mail,
        "is_auto_reply": message.is_auto_reply,
        "status": message.status,
        "tags": [t for t in message.tags.split(",") if t],
        "attachments": json.loads(message.attachments or "[]"),
    }
