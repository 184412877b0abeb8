"""What happens to an inbound mail once downloaded: parse, de-duplicate, store, filter, route, resolve.

Everything here runs inside the fetch transaction; the caller commits (and only then
acknowledges the mail on the server). A mail that breaks a plugin is quarantined through a
savepoint, never rolling back the rest of the batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.mail import ParsedMail
from postroom.core.contract.resolvers import ResolverContext
from postroom.core.contract.routing import RouteChoice
from postroom.core.data.configuration import failure_mail_addresses
from postroom.core.data.directory import customer_for_sender, customers_by_address, find_customer_by_address
from postroom.core.data.models import (
    Customer,
    Direction,
    FetchLedger,
    LedgerOutcome,
    MediaProfile,
    Message,
    MessageAddress,
    MessageRaw,
    MessageStatus,
    SMessageSendInfo,
    Ticket,
    TicketState,
    utcnow,
)
from postroom.core.data.raw_store import insert_raws
from postroom.core.data.tickets import (
    append_message,
    create_ticket,
    escalate,
    follow_merges,
    latest_open_ticket_for_customer,
)
from postroom.core.mail.bounces import bounced_message_ids, failed_recipients, reported_failures
from postroom.core.mail.parse import MailParseError, parse_mail
from postroom.core.mail.subjects import normalise_subject
from postroom.core.plugin_host import PluginHost

log = logging.getLogger(__name__)
DEFAULT_RESOLVER = "case-id"


@dataclass
class StoreResult:
    outcome: LedgerOutcome
    message_pk: int | None = None


@dataclass
class _Entry:
    """One mail of a batch being stored: its new message, or (a duplicate) the message it repeats."""

    key: str
    raw: bytes
    parsed: ParsedMail | str  # the parsed mail, or why it could not be parsed
    message: Message | int  # a Message of this batch, or the primary key of an earlier one
    is_new: bool

    @property
    def message_pk(self) -> int:
        return self.message.id if isinstance(self.message, Message) else self.message


def _text(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else value


class InboundPipeline:
    """Stores and processes the mails of one profile within one session (one fetch batch or a re-route)."""

    def __init__(self, session: Session, plugins: PluginHost, profile: MediaProfile) -> None:
        self.session = session
        self.plugins = plugins
        self.profile = profile
        #: Sender address -> customer, while a batch is processed inside one savepoint.
        self.known_customers: dict[str, Customer] | None = None

    @cached_property
    def failure_addresses(self) -> set[str]:
        return failure_mail_addresses(self.session, self.profile.contact_center_id)

    @cached_property
    def resolver_names(self) -> list[str]:
        return [r.resolver_name for r in self.profile.resolvers] or [DEFAULT_RESOLVER]

    # --- storing ------------------------------------------------------------------------------

    def store(self, mailbox_key: str, raw: bytes) -> StoreResult:
        """Store one fetched mail with its ledger row, then route and resolve it."""
        return self.store_batch([(mailbox_key, raw)])[0]

    def store_batch(self, mails: Sequence[tuple[str, bytes]]) -> list[StoreResult]:
        """Store a batch of fetched ``(mailbox key, raw)`` mails with their ledger rows; route and resolve each.

        Each mail is parsed once; one query finds the Message-IDs already stored and one
        statement each writes the messages, their raw bytes, addresses and ledger rows. A repeated
        Message-ID (also within the batch) is recorded as a duplicate of the message that has it.
        """
        parsed = [self._parse(key, raw) for key, raw in mails]
        wanted = {p.message_id[:998] for p in parsed if isinstance(p, ParsedMail) and p.message_id}
        originals: dict[str, Message | int] = dict(self._stored_message_ids(wanted))
        entries: list[_Entry] = []
        for (key, raw), result in zip(mails, parsed, strict=True):
            message_id = (
                result.message_id[:998] if isinstance(result, ParsedMail) and result.message_id else None
            )
            original = originals.get(message_id) if message_id else None
            if original is not None:
                entries.append(_Entry(key, raw, result, original, is_new=False))
                continue
            message = (
                self._new_message(result) if isinstance(result, ParsedMail) else self._quarantined(result)
            )
            if message_id:
                originals[message_id] = message
            entries.append(_Entry(key, raw, result, message, is_new=True))
        new = [e for e in entries if e.is_new]
        self.session.add_all(e.message for e in new)
        self.session.flush()
        insert_raws(self.session, [(e.message_pk, e.raw) for e in new])
        addresses = [row for e in new for row in self._addresses(e)]
        if addresses:
            self.session.execute(insert(MessageAddress), addresses)
        for entry in entries:
            self._announce(entry)
        self.process_batch(
            [
                (e.message, e.parsed)
                for e in new
                if isinstance(e.message, Message) and isinstance(e.parsed, ParsedMail)
            ]
        )
        results = [self._outcome(e) for e in entries]
        self._insert_ledger(entries, results)
        return results

    def quarantine(self, mailbox_key: str, raw: bytes, reason: str) -> StoreResult:
        """Keep a mail raw and quarantined with ``reason``, with its ledger row; nothing is parsed."""
        entry = _Entry(mailbox_key, raw, reason, self._quarantined(reason), is_new=True)
        self.session.add(entry.message)
        self.session.flush()
        insert_raws(self.session, [(entry.message_pk, raw)])
        self._announce(entry)
        result = self._outcome(entry)
        self._insert_ledger([entry], [result])
        return result

    def _insert_ledger(self, entries: Sequence[_Entry], results: Sequence[StoreResult]) -> None:
        rows = [
            {
                "media_profile_id": self.profile.id,
                "mailbox_key": e.key,
                "outcome": r.outcome,
                "message_pk": r.message_pk,
            }
            for e, r in zip(entries, results, strict=True)
        ]
        self.session.execute(insert(FetchLedger), rows)

    def _parse(self, mailbox_key: str, raw: bytes) -> ParsedMail | str:
        """The parsed mail, or the reason it cannot be parsed."""
        try:
            return parse_mail(raw)
        except MailParseError as error:
            return str(error)
        except Exception as error:  # the parser must never stop a mailbox
            log.exception("parser failed on %s of profile %s", mailbox_key, self.profile.name)
            return f"The mail could not be parsed ({type(error).__name__})."

    def _stored_message_ids(self, message_ids: set[str]) -> dict[str, int]:
        """Message-ID -> message of those already stored as inbound mail of this profile (one indexed query)."""
        if not message_ids:
            return {}
        rows = self.session.execute(
            select(Message.message_id, func.min(Message.id))
            .where(
                Message.media_profile_id == self.profile.id,
                Message.message_id.in_(message_ids),
                Message.direction == Direction.INBOUND,
            )
            .group_by(Message.message_id)
        )
        return {message_id: pk for message_id, pk in rows if message_id}

    def _announce(self, entry: _Entry) -> None:
        """Send the signal that says what became of a mail of the batch."""
        parsed, message = entry.parsed, entry.message
        if not entry.is_new:
            assert isinstance(parsed, ParsedMail) and parsed.message_id
            events.emit(
                events.message_duplicate,
                self,
                profile_id=self.profile.id,
                mailbox_key=entry.key,
                message_id=parsed.message_id,
            )
        elif isinstance(parsed, ParsedMail):
            events.emit(
                events.message_stored,
                self,
                profile_id=self.profile.id,
                message_pk=entry.message_pk,
                message_id=parsed.message_id,
            )
        else:
            assert isinstance(message, Message)
            events.emit(
                events.message_quarantined,
                self,
                profile_id=self.profile.id,
                message_pk=message.id,
                reason=message.reason,
            )

    @staticmethod
    def _outcome(entry: _Entry) -> StoreResult:
        """How a mail of the batch ended, once processed: a plugin that broke on it quarantined it."""
        if not entry.is_new:
            return StoreResult(LedgerOutcome.DUPLICATE, entry.message_pk)
        assert isinstance(entry.message, Message)
        quarantined = entry.message.status == MessageStatus.QUARANTINED
        return StoreResult(
            LedgerOutcome.QUARANTINED if quarantined else LedgerOutcome.STORED, entry.message_pk
        )

    def _quarantined(self, reason: str) -> Message:
        return Message(
            contact_center_id=self.profile.contact_center_id,
            media_profile_id=self.profile.id,
            direction=Direction.INBOUND,
            status=MessageStatus.QUARANTINED,
            reason=reason,
        )

    def _new_message(self, parsed: ParsedMail) -> Message:
        return Message(
            contact_center_id=self.profile.contact_center_id,
            media_profile_id=self.profile.id,
            direction=Direction.INBOUND,
            status=MessageStatus.UNROUTED,
            message_id=_text(parsed.message_id, 998),
            in_reply_to=_text(parsed.in_reply_to, 998),
            reference_ids=" ".join(parsed.references) or None,
            from_address=_text(parsed.from_address, 255),
            from_name=parsed.from_name,
            to_addresses=",".join(parsed.to),
            cc_addresses=",".join(parsed.cc),
            reply_to=",".join(parsed.reply_to) or None,
            subject=parsed.subject,
            sent_date=parsed.date,
            text_body=parsed.text,
            html_body=parsed.html,
            attachments=json.dumps(
                [{"name": a.name, "content_type": a.content_type, "size": a.size} for a in parsed.attachments]
            ),
        )

    @staticmethod
    def _addresses(entry: _Entry) -> list[dict[str, object]]:
        """The message_address rows of a stored mail: its sender, To and Cc, each role and address once."""
        parsed = entry.parsed
        if not isinstance(parsed, ParsedMail):
            return []
        addresses = [("from", parsed.from_address)] if parsed.from_address else []
        addresses += [("to", a) for a in parsed.to] + [("cc", a) for a in parsed.cc]
        return [
            {"message_pk": entry.message_pk, "role": role, "address": address[:255]}
            for role, address in dict.fromkeys(addresses)
        ]

    # --- processing ---------------------------------------------------------------------------

    def process_batch(self, mails: Sequence[tuple[Message, ParsedMail]]) -> None:
        """Process stored mails in order inside one savepoint; if anything breaks, redo them one by one.

        The common case costs one SAVEPOINT for the batch; only a batch holding a mail that breaks
        a plugin pays a savepoint per mail, so that mail alone is quarantined.
        """
        if not mails:
            return
        try:
            with events.held(), self.session.begin_nested():
                self.known_customers = customers_by_address(
                    self.session,
                    self.profile.contact_center_id,
                    [p.from_address for _, p in mails if p.from_address],
                )
                for message, parsed in mails:
                    self._process(message, parsed)
        except Exception:
            # The cache may name customers the rolled-back savepoint created: drop it first.
            self.known_customers = None
            log.info("a mail broke processing; processing this batch of %d one by one", len(mails))
            for message, parsed in mails:
                self.process(message, parsed)
        finally:
            self.known_customers = None

    def process(self, message: Message, parsed: ParsedMail) -> None:
        """Filter, route and resolve a stored mail; a failing plugin quarantines it (savepoint)."""
        try:
            with events.held(), self.session.begin_nested():
                self._process(message, parsed)
        except Exception as error:
            log.exception("processing failed for message %s of profile %s", message.id, self.profile.name)
            message.status = MessageStatus.QUARANTINED
            message.reason = f"A plugin failed on this mail: {type(error).__name__}: {error}"[:2000]
            self.session.flush()
            events.emit(
                events.message_quarantined,
                self,
                profile_id=self.profile.id,
                message_pk=message.id,
                reason=message.reason,
            )

    def _process(self, message: Message, parsed: ParsedMail) -> None:
        tags: list[str] = []
        for verdict in self.plugins.inbound_verdicts(parsed, self.profile):
            tags.extend(verdict.tags)
            message.is_auto_reply = message.is_auto_reply or verdict.auto_reply
            if verdict.hold:
                message.status, message.reason = (
                    MessageStatus.HELD,
                    verdict.reason or "Held by an inbound filter.",
                )
        message.tags = ",".join(dict.fromkeys(tags))
        if message.status == MessageStatus.HELD:
            return
        route = self.plugins.route_message(parsed, self.profile, self.session)
        if route is None:
            message.status = MessageStatus.UNROUTED
            message.reason = f"No routing rule of profile {self.profile.name!r} matches this mail."
            events.emit(events.message_unrouted, self, profile_id=self.profile.id, message_pk=message.id)
            return
        events.emit(
            events.message_routed,
            self,
            profile_id=self.profile.id,
            message_pk=message.id,
            campaign_id=route.campaign_id,
            queue_id=route.queue_id,
        )
        if self._is_failure_mail(parsed):
            self._handle_failure_mail(message, parsed, route)
            return
        customer = (
            customer_for_sender(
                self.session,
                self.profile.contact_center_id,
                parsed.from_address,
                parsed.from_name,
                self.known_customers,
            )
            if parsed.from_address
            else None
        )
        message.customer_id = customer.id if customer else None
        ticket = self._resolve(message, parsed, route, customer) or self._new_ticket(route, message, parsed)
        append_message(self.session, ticket, message)
        message.reason = None

    def _new_ticket(self, route: RouteChoice, message: Message, parsed: ParsedMail) -> Ticket:
        """A new ticket for the mail's customer, where routing put it, through this profile."""
        return create_ticket(
            self.session,
            contact_center_id=self.profile.contact_center_id,
            campaign_id=route.campaign_id,
            queue_id=route.queue_id,
            customer_id=message.customer_id,
            profile=self.profile,
            subject=parsed.subject,
        )

    def _resolve(
        self, message: Message, parsed: ParsedMail, route: RouteChoice, customer: Customer | None
    ) -> Ticket | None:
        context = ResolverContext(
            session=self.session,
            message=parsed,
            stored=message,
            profile=self.profile,
            campaign_id=route.campaign_id,
            customer=customer,
            normalised_subject=normalise_subject(parsed.subject, self.profile.subject_prefix)[:512],
        )
        for name in self.resolver_names:
            resolver = self.plugins.resolver(name)
            if resolver is None:
                log.warning(
                    "profile %s names resolver %r, which is not installed or disabled",
                    self.profile.name,
                    name,
                )
                continue
            found = resolver.find_ticket(context)
            if found is None:
                continue
            found = follow_merges(self.session, found)
            if found.state == TicketState.OPEN and found.campaign_id == route.campaign_id:
                return found
        return None

    def _is_failure_mail(self, parsed: ParsedMail) -> bool:
        """A bounce: from a configured failure-mail address, or a report that a mail postroom sent failed.

        The second kind is a delivery status notification (RFC 3464, ``multipart/report;
        report-type=delivery-status``) naming a failed recipient and the Message-ID of a reply in
        the outbox. Bounces come from more servers than anyone configures; one that is about our
        own mail is a bounce whoever sends it, and must not open a ticket for "postmaster".
        """
        if parsed.from_address and parsed.from_address in self.failure_addresses:
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
        return self.session.scalar(ours) is not None

    def _handle_failure_mail(self, message: Message, parsed: ParsedMail, route: RouteChoice) -> None:
        """A bounce: escalate the customer's open ticket (customer-based resolvers) or open an escalated one."""
        message.is_failure_mail = True
        recipients = failed_recipients(parsed.raw)
        customer = next(
            (
                c
                for a in recipients
                if (c := find_customer_by_address(self.session, self.profile.contact_center_id, a))
            ),
            None,
        )
        message.customer_id = customer.id if customer else None
        customer_based = any(
            getattr(self.plugins.resolvers.get(name), "CUSTOMER_BASED", False) for name in self.resolver_names
        )
        ticket = None
        if customer_based and customer is not None:
            ticket = latest_open_ticket_for_customer(self.session, route.campaign_id, customer.id)
        if ticket is None:
            ticket = self._new_ticket(route, message, parsed)
        append_message(self.session, ticket, message)
        escalate(
            self.session, ticket, f"Delivery failed for {', '.join(recipients) or 'an unknown recipient'}."
        )
        original_ids = bounced_message_ids(parsed.raw)
        if original_ids:
            self.session.execute(
                update(SMessageSendInfo)
                .where(SMessageSendInfo.message_id.in_(original_ids))
                .values(bounced_at=utcnow(), bounce_text=(parsed.text or parsed.subject or "")[:4000])
            )
        message.reason = None
        events.emit(
            events.failure_mail_received,
            self,
            profile_id=self.profile.id,
            message_pk=message.id,
            recipients=recipients,
            ticket_id=ticket.id,
        )


def reroute_held_mail(session: Session, plugins: PluginHost, profile: MediaProfile) -> int:
    """Route again every unrouted mail of a profile (after a rule was added or changed); returns how many landed."""
    pipeline = InboundPipeline(session, plugins, profile)
    held = session.execute(
        select(Message, MessageRaw.raw)
        .join(MessageRaw, MessageRaw.message_pk == Message.id)
        .where(Message.media_profile_id == profile.id, Message.status == MessageStatus.UNROUTED)
        .order_by(Message.id)
    ).all()
    routed = 0
    for message, raw in held:
        try:
            parsed = parse_mail(raw)
        except Exception:  # it parsed when it was stored; a parser change must not stop the re-route
            continue
        pipeline.process(message, parsed)
        routed += message.status == MessageStatus.TICKETED
    return routed
