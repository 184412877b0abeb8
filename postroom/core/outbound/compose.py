"""Composing an agent's reply: the draft plugins may adjust, the MIME message built from it, and its queueing.

An agent's reply is not automatic mail: it carries no ``Auto-Submitted`` header, so the
customer's own auto-responder may answer it. Mail postroom sends *by itself* (``automatic=True``)
carries ``Auto-Submitted: auto-replied`` (RFC 3834). Every mail carries ``X-Postroom-Loop``, which
postroom's inbound auto-reply filter treats as automatic should the mail ever come back in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session, undefer

from postroom.core.contract import events
from postroom.core.contract.drafts import OutgoingAttachment, OutgoingDraft
from postroom.core.contract.errors import UserError
from postroom.core.data.configuration import profile_mapping
from postroom.core.data.directory import get_agent
from postroom.core.data.messages import (
    MailToStore,
    address_column,
    address_roles,
    attachment_summary,
    new_message,
    store_messages,
)
from postroom.core.data.models import (
    Agent,
    Campaign,
    Customer,
    Direction,
    MediaProfile,
    Message,
    MessageStatus,
    SendState,
    SMessageSendInfo,
    Ticket,
    TicketState,
    utcnow,
)
from postroom.core.data.tickets import append_message, get_ticket
from postroom.core.mail.build import (
    assemble_html,
    assemble_text,
    build_message,
    header_text,
    quote,
    references,
    text_to_html,
)
from postroom.core.mail.subjects import reply_subject
from postroom.core.outbound.recipients import Recipients, Skipped, chosen_recipients, reply_recipients

if TYPE_CHECKING:
    from postroom.core.app import Postroom
    from postroom.core.plugin_host import PluginHost


@dataclass(frozen=True)
class QueuedReply:
    """A reply committed to the outbox."""

    send_info_id: int
    message_pk: int
    message_id: str
    ticket_id: int
    profile_id: int
    profile_name: str
    to: list[str]
    cc: list[str]
    subject: str
    skipped: Sequence[Skipped] = ()

    def as_json(self) -> dict[str, Any]:
        """The document ``ticket reply --json`` prints."""
        return {
            "outbox_id": self.send_info_id,
            "message_pk": self.message_pk,
            "message_id": self.message_id,
            "ticket_id": self.ticket_id,
            "profile": self.profile_name,
            "to": self.to,
            "cc": self.cc,
            "subject": self.subject,
            "skipped": [s.as_json() for s in self.skipped],
        }


# --- choosing the profile and the recipients ---------------------------------------------------------


def outgoing_profile(session: Session, ticket: Ticket) -> MediaProfile:
    """The profile a reply on ``ticket`` goes out through: its source profile, or the one it is mapped to."""
    if ticket.source_profile_id is None:
        raise UserError(
            f"Ticket {ticket.id} did not come in through a media profile; there is none to reply through."
        )
    target_id = profile_mapping(session, ticket.contact_center_id).get(
        ticket.source_profile_id, ticket.source_profile_id
    )
    profile = session.get(MediaProfile, target_id)
    mapped = (
        ""
        if target_id == ticket.source_profile_id
        else f" (mediaProfileMapping of profile {ticket.source_profile_id})"
    )
    if profile is None or profile.deleted_at is not None:
        raise UserError(
            f"The reply profile {target_id}{mapped} of ticket {ticket.id} does not exist or was deleted."
        )
    if not profile.can_send:
        raise UserError(
            f"Profile {profile.name!r}{mapped} does not allow outgoing mail; "
            "give it a send protocol and outgoing server first."
        )
    if not profile.send_from_address:
        raise UserError(
            f"Profile {profile.name!r} has no send-from address; "
            f"set one with 'postroom profile modify {profile.name} --send-from-address ADDRESS'."
        )
    return profile


def own_addresses(session: Session, contact_center_id: int) -> set[str]:
    """Every address that is postroom's own in a contact centre: never a recipient of its replies."""
    rows = session.execute(
        select(MediaProfile.send_from_address, MediaProfile.reply_to_address, MediaProfile.username).where(
            MediaProfile.contact_center_id == contact_center_id
        )
    )
    return {a.strip().lower() for row in rows for a in row if a and "@" in a}


def answered_message(session: Session, ticket: Ticket) -> Message | None:
    """The mail a reply answers: the ticket's newest inbound mail from the ticket's customer (a Cc'd
    colleague's answer does not make them the addressee), then from anyone; never a bounce, and an
    auto-reply (an out-of-office answer to an earlier reply) only when there is nothing else."""
    from_customer = Message.customer_id == ticket.customer_id if ticket.customer_id is not None else None
    message: Message | None = session.scalar(
        select(Message)
        .options(undefer(Message.text_body), undefer(Message.html_body))
        .where(
            Message.ticket_id == ticket.id,
            Message.direction == Direction.INBOUND,
            Message.is_failure_mail.is_(False),
        )
        .order_by(
            Message.is_auto_reply,
            *([case((from_customer, 0), else_=1)] if from_customer is not None else []),
            Message.id.desc(),
        )
        .limit(1)
    )
    return message


def new_message_id(ticket_id: int, from_address: str) -> str:
    """A Message-ID in the domain of the send-from address, unique to this reply (bare, no brackets)."""
    domain = from_address.rpartition("@")[2].strip().lower() or "postroom.invalid"
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        domain = domain.encode("idna").decode("ascii")
    return f"postroom.{ticket_id}.{uuid.uuid4().hex}@{domain}"


# --- the service ---------------------------------------------------------------------------------------


def draft_reply(
    session: Session,
    ticket: Ticket,
    body: str,
    *,
    agent: Agent | None = None,
    now: datetime | None = None,
    automatic: bool = False,
    chosen: Recipients | None = None,
) -> tuple[OutgoingDraft, MediaProfile, list[Skipped]]:
    """The draft of a reply on ``ticket`` before plugins adjust it, the profile it goes out through,
    and the answered mail's addresses left out (none when the recipients are ``chosen``)."""
    profile = outgoing_profile(session, ticket)
    answered = answered_message(session, ticket)
    recipients = chosen or reply_recipients(
        session, ticket, answered, own_addresses(session, ticket.contact_center_id)
    )
    to, cc = recipients.to, recipients.cc
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    campaign = session.get(Campaign, ticket.campaign_id)
    in_reply_to = answered.message_id if answered else None
    earlier = (answered.reference_ids or "").split() if answered else []
    quote_text, quote_html = quote(answered)
    assert profile.send_from_address is not None  # outgoing_profile checked it
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    draft = OutgoingDraft(
        ticket_id=ticket.id,
        profile_id=profile.id,
        from_name=profile.send_from_name,
        from_address=profile.send_from_address,
        to=to,
        cc=cc,
        subject=reply_subject(ticket.subject, profile.subject_prefix, ticket.case_token),
        text=text,
        html=text_to_html(text),
        message_id=new_message_id(ticket.id, profile.send_from_address),
        reply_to=profile.reply_to_address if profile.reply_to_enabled else None,
        in_reply_to=in_reply_to,
        references=references(in_reply_to, earlier),
        agent_name=agent.name if agent else None,
        customer_name=customer.name if customer else None,
        campaign=campaign.name if campaign else None,
        profile_name=profile.name,
        case_token=ticket.case_token,
        date=now or utcnow(),
        quote_text=quote_text,
        quote_html=quote_html,
        signature_position=profile.signature_position or "before",
        automatic=automatic,
    )
    return draft, profile, recipients.skipped


def prepare_reply(
    session: Session,
    plugins: PluginHost,
    ticket: Ticket,
    body: str,
    *,
    agent: Agent | None = None,
    now: datetime | None = None,
    automatic: bool = False,
    attachments: Sequence[OutgoingAttachment] = (),
    chosen: Recipients | None = None,
) -> tuple[OutgoingDraft, MediaProfile, list[Skipped]]:
    """The draft of a reply as it will be queued (plugins have adjusted it: signature, headers), its
    profile and the addresses left out; nothing is stored. :func:`compose_reply` queues this draft,
    and the console's preview shows it."""
    if ticket.state == TicketState.MERGED:
        raise UserError(f"Ticket {ticket.id} was merged into ticket {ticket.merged_into_id}; reply there.")
    if not body.strip():
        raise UserError("A reply needs a body.")
    draft, profile, skipped = draft_reply(
        session, ticket, body, agent=agent, now=now, automatic=automatic, chosen=chosen
    )
    draft.attachments.extend(attachments)
    plugins.compose_outgoing(draft, ticket, profile)
    return draft, profile, skipped


def compose_reply(
    session: Session,
    plugins: PluginHost,
    ticket: Ticket,
    body: str,
    *,
    agent: Agent | None = None,
    now: datetime | None = None,
    automatic: bool = False,
    attachments: Sequence[OutgoingAttachment] = (),
    chosen: Recipients | None = None,
) -> QueuedReply:
    """Compose a reply and add it to the outbox within ``session``; the caller commits.

    The reply is an outbound message on the ticket (its raw bytes kept) plus its
    ``s_message_send_info`` row, due at once. It goes to the ``chosen`` recipients if given.
    """
    draft, profile, skipped = prepare_reply(
        session,
        plugins,
        ticket,
        body,
        agent=agent,
        now=now,
        automatic=automatic,
        attachments=attachments,
        chosen=chosen,
    )
    raw = build_message(draft).as_bytes()
    message = new_message(
        contact_center_id=ticket.contact_center_id,
        media_profile_id=profile.id,
        ticket_id=ticket.id,
        customer_id=ticket.customer_id,
        agent_id=agent.id if agent else None,
        direction=Direction.OUTBOUND,
        status=MessageStatus.OUTGOING,
        message_id=draft.message_id,
        in_reply_to=draft.in_reply_to,
        reference_ids=" ".join(draft.references) or None,
        from_address=draft.from_address,
        from_name=draft.from_name,
        to_addresses=address_column(draft.to),
        cc_addresses=address_column(draft.cc),
        reply_to=address_column([draft.reply_to]) if draft.reply_to else None,
        skipped_recipients=json.dumps([s.as_json() for s in skipped], ensure_ascii=False)
        if skipped
        else None,
        subject=header_text(draft.subject),
        sent_date=draft.date,
        is_auto_reply=draft.automatic,
        text_body=assemble_text(draft),
        html_body=assemble_html(draft),
        attachments=attachment_summary((a.filename, a.content_type, len(a.data)) for a in draft.attachments),
    )
    store_messages(
        session, [MailToStore(message, raw, address_roles(draft.from_address, draft.to, draft.cc))]
    )
    send_info = SMessageSendInfo(
        message_pk=message.id,
        ticket_id=ticket.id,
        media_profile_id=profile.id,
        message_id=draft.message_id,
        envelope_from=draft.from_address,
        pending_recipients=json.dumps(draft.recipients),
        state=SendState.QUEUED,
        attempts=0,
        next_attempt_at=draft.date,
    )
    session.add(send_info)
    append_message(session, ticket, message)
    session.flush()
    return QueuedReply(
        send_info_id=send_info.id,
        message_pk=message.id,
        message_id=draft.message_id,
        ticket_id=ticket.id,
        profile_id=profile.id,
        profile_name=profile.name,
        to=draft.to,
        cc=draft.cc,
        subject=message.subject,
        skipped=skipped,
    )


def queue_reply(
    app: Postroom,
    contact_center_id: int,
    ticket_id: int,
    body: str,
    *,
    agent_name: str | None = None,
    now: datetime | None = None,
    automatic: bool = False,
    attachments: Sequence[OutgoingAttachment] = (),
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
) -> QueuedReply:
    """Compose a reply on a ticket and commit it to the outbox before returning; signals ``reply-queued``.

    Given ``to`` (and ``cc``), the reply goes to those addresses instead of the computed ones.
    """
    chosen = chosen_recipients(to, cc) if to or cc else None
    with app.transaction() as session:
        ticket = get_ticket(session, contact_center_id, ticket_id)
        agent = get_agent(session, contact_center_id, agent_name) if agent_name else None
        queued = compose_reply(
            session,
            app.plugins,
            ticket,
            body,
            agent=agent,
            now=now,
            automatic=automatic,
            attachments=attachments,
            chosen=chosen,
        )
    events.emit(
        events.reply_queued,
        queue_reply,
        send_info_id=queued.send_info_id,
        ticket_id=queued.ticket_id,
        profile_id=queued.profile_id,
        message_id=queued.message_id,
    )
    return queued
