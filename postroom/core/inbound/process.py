"""Processing a stored inbound mail: inbound filters, routing, the customer, and the ticket resolvers.

Runs inside the caller's transaction. A mail that breaks a plugin is quarantined through a
savepoint, never rolling back the rest of the batch; the signals of a rolled-back savepoint are
dropped (``events.held``) and the others go out after the caller's commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property

from sqlalchemy.orm import Session

from postroom.core.contract import events
from postroom.core.contract.mail import ParsedMail
from postroom.core.contract.resolvers import ResolverContext, ResolverPlugin
from postroom.core.contract.routing import RouteChoice
from postroom.core.data.columns import fit
from postroom.core.data.configuration import failure_mail_addresses
from postroom.core.data.db import is_outage
from postroom.core.data.directory import customer_for_sender, customers_by_address
from postroom.core.data.models import Customer, MediaProfile, Message, MessageStatus, Ticket, TicketState
from postroom.core.data.plugin_data import BoundTicketAttributes
from postroom.core.data.threads import ThreadIndex
from postroom.core.data.tickets import append_message, create_ticket, follow_merges, give_case_tokens
from postroom.core.inbound.failure_mail import handle_failure_mail, read_failure_mail
from postroom.core.mail.subjects import normalise_subject
from postroom.core.plugin_host import PluginHost, blame, culprit

log = logging.getLogger(__name__)
DEFAULT_RESOLVER = "case-id"


class MailProcessor:
    """Filters, routes and resolves the stored mails of one profile within one session."""

    def __init__(self, session: Session, plugins: PluginHost, profile: MediaProfile) -> None:
        self.session = session
        self.plugins = plugins
        self.profile = profile
        #: Sender address -> customer, while a batch is processed inside one savepoint.
        self.known_customers: dict[str, Customer] | None = None
        #: The tickets of the batch's threads, while a batch is processed inside one savepoint.
        self.threads: ThreadIndex | None = None
        #: Tickets opened in the current savepoint, inserted together at its end (deferred).
        self.new_tickets: list[Ticket] = []

    @cached_property
    def failure_addresses(self) -> set[str]:
        return failure_mail_addresses(self.session, self.profile.contact_center_id)

    @cached_property
    def resolver_names(self) -> list[str]:
        return [r.resolver_name for r in self.profile.resolvers] or [DEFAULT_RESOLVER]

    def process_batch(self, mails: Sequence[tuple[Message, ParsedMail]]) -> None:
        """Process stored mails in order inside one savepoint; if anything breaks, redo them one by one.

        The common case costs one SAVEPOINT for the batch; only a batch holding a mail that breaks
        a plugin pays a savepoint per mail, so that mail alone is quarantined. Within it, the batch
        costs a fixed number of statements, not some per mail: the senders' customers and (for a
        threaded resolver) the tickets of the threads the mails refer to are read in one query each,
        and the new tickets and the messages' changes are written in one flush at the end, unless a
        plugin's query or a new customer flushes earlier (the session's autoflush keeps that right).
        """
        if not mails:
            return
        try:
            with events.held(), self.session.begin_nested():
                self.new_tickets = []
                self.known_customers = customers_by_address(
                    self.session,
                    self.profile.contact_center_id,
                    [p.from_address for _, p in mails if p.from_address],
                )
                self.threads = self._thread_index([p for _, p in mails])
                for message, parsed in mails:
                    self._process(message, parsed)
                self._insert_new_tickets()
        except Exception as error:
            if is_outage(error):
                raise  # no mail is at fault: the batch is not committed, the fetch says so once
            # The caches may name customers and tickets the rolled-back savepoint created: drop them first.
            self.known_customers = None
            self.threads = None
            log.info("a mail broke processing; processing this batch of %d one by one", len(mails))
            for message, parsed in mails:
                self.process(message, parsed)
        finally:
            self.known_customers = None
            self.threads = None
            self.new_tickets = []

    def _thread_index(self, mails: Sequence[ParsedMail]) -> ThreadIndex | None:
        """The batch's threads, loaded now if a resolver of the profile follows threads; else None."""
        if not any(getattr(self.plugins.resolver(name), "THREADED", False) for name in self.resolver_names):
            return None
        index = ThreadIndex(
            self.session, self.profile.contact_center_id, ([p.in_reply_to, *p.references] for p in mails)
        )
        index.load()
        return index

    def _insert_new_tickets(self) -> None:
        """Insert the savepoint's deferred tickets in one flush and give them their case tokens."""
        tickets, self.new_tickets = self.new_tickets, []
        give_case_tokens(self.session, tickets)

    def process(self, message: Message, parsed: ParsedMail) -> None:
        """Filter, route and resolve a stored mail; a failing plugin quarantines it (savepoint)."""
        try:
            with events.held(), self.session.begin_nested():
                self.new_tickets = []
                self._process(message, parsed)
                self._insert_new_tickets()
        except RecursionError:
            # The stdlib reads comments and groups recursively: a header of 100,000 "(" is hostile or
            # broken mail, not a bug to trace; one line says so.
            reason = "A header of this mail is nested too deeply to read."
            log.warning("profile %s: message %s quarantined: %s", self.profile.name, message.id, reason)
            self._quarantine(message, reason)
        except Exception as error:
            if is_outage(error):
                raise  # the database went away under the plugin: not the mail's fault, nor a bug
            plugin = culprit(error)
            said = f"{type(error).__name__}: {error}"
            # The one log of this failure, with its traceback (the batch attempt before logs none).
            log.error(
                "plugin %s failed on message %s of profile %s; the mail is quarantined",
                plugin or "(unknown)",
                message.id,
                self.profile.name,
                exc_info=error,
            )
            self._quarantine(
                message,
                f"Plugin {plugin!r} failed on this mail: {said}" if plugin else f"Processing failed on this mail: {said}",
            )

    def _quarantine(self, message: Message, reason: str) -> None:
        """Mark a stored mail quarantined with ``reason`` (its savepoint undone) and say so."""
        message.status = MessageStatus.QUARANTINED
        message.reason = fit(Message.reason, reason)
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
                message.status = MessageStatus.HELD
                message.reason = fit(Message.reason, verdict.reason or "Held by an inbound filter.")
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
        failure = read_failure_mail(self.session, self.plugins, self.profile, parsed, self.failure_addresses)
        if failure is not None:
            customer_based = any(
                getattr(self.plugins.resolvers.get(name), "CUSTOMER_BASED", False)
                for name in self.resolver_names
            )
            handle_failure_mail(
                self.session,
                self.profile,
                message,
                parsed,
                route,
                failure,
                customer_based=customer_based,
                new_ticket=lambda: self._new_ticket(route, message, parsed, deferred=False),
            )
            ticket = self.session.get(Ticket, message.ticket_id) if message.ticket_id is not None else None
            if self.threads is not None and ticket is not None:
                self.threads.record(message, ticket)  # a reply to the bounce, later in the batch, finds it
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
        context = self._context(message, parsed, route, customer)
        resolvers = self._resolvers()
        ticket = self._resolve(context, route, resolvers) or self._new_ticket(route, message, parsed)
        append_message(self.session, ticket, message)
        message.reason = None
        if self.threads is not None:
            self.threads.record(message, ticket)
        if ticket.id is None and any(_overrides_ticket_chosen(r) for r in resolvers):
            give_case_tokens(self.session, [ticket])  # a plugin's ticket_chosen may need its id and token
        for resolver in resolvers:
            resolver.ticket_chosen(context, ticket)

    def _new_ticket(self, route: RouteChoice, message: Message, parsed: ParsedMail, deferred: bool = True) -> Ticket:
        """A new ticket for the mail's customer, where routing put it, through this profile.

        Deferred (the default): inserted with the savepoint's other new tickets at its end.
        """
        ticket = create_ticket(
            self.session,
            contact_center_id=self.profile.contact_center_id,
            campaign_id=route.campaign_id,
            queue_id=route.queue_id,
            customer_id=message.customer_id,
            profile=self.profile,
            subject=parsed.subject,
            deferred=deferred,
        )
        if deferred:
            self.new_tickets.append(ticket)
        return ticket

    def _context(
        self, message: Message, parsed: ParsedMail, route: RouteChoice, customer: Customer | None
    ) -> ResolverContext:
        return ResolverContext(
            session=self.session,
            message=parsed,
            stored=message,
            profile=self.profile,
            campaign_id=route.campaign_id,
            customer=customer,
            normalised_subject=fit(
                Ticket.normalised_subject, normalise_subject(parsed.subject, self.profile.subject_prefix)
            ),
            attribute_store=lambda plugin: BoundTicketAttributes(
                self.session, plugin, self.profile.contact_center_id, route.campaign_id
            ),
            thread_ticket=self.threads.ticket_of if self.threads is not None else None,
        )

    def _resolvers(self) -> list[ResolverPlugin]:
        """The profile's installed, enabled resolvers, in priority order."""
        found: list[ResolverPlugin] = []
        for name in self.resolver_names:
            resolver = self.plugins.resolver(name)
            if resolver is None:
                log.warning(
                    "profile %s names resolver %r, which is not installed or disabled",
                    self.profile.name,
                    name,
                )
                continue
            found.append(resolver)
        return found

    def _resolve(
        self, context: ResolverContext, route: RouteChoice, resolvers: list[ResolverPlugin]
    ) -> Ticket | None:
        for resolver in resolvers:
            try:
                found = resolver.find_ticket(context)
            except Exception as error:
                blame(error, self.plugins.owners.get(("resolver", resolver.NAME), resolver.NAME))
                raise
            if found is None:
                continue
            found = follow_merges(self.session, found)
            if found.state == TicketState.OPEN and found.campaign_id == route.campaign_id:
                return found
        return None


def _overrides_ticket_chosen(resolver: ResolverPlugin) -> bool:
    return type(resolver).ticket_chosen is not ResolverPlugin.ticket_chosen
