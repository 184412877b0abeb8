"""The case-ID resolver: follow the mail's thread (In-Reply-To/References) or the case token in its subject."""

from __future__ import annotations

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.data.models import Ticket
from postroom.core.data.tickets import ticket_by_case_token, ticket_of_thread
from postroom.core.mail.subjects import find_case_tokens


class CaseIdResolver(ResolverPlugin):
    """A reply to any stored message (inbound or outbound) joins that message's ticket; a subject
    carrying a ticket's case token (``[#PR-42]``) joins that ticket; anything else is a new thread."""

    NAME = "case-id"
    LABEL = "Case ID based resolver"
    THREADED = True

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        message = context.message
        thread = [m for m in [message.in_reply_to, *reversed(message.references)] if m]
        if context.thread_ticket is not None:
            ticket = context.thread_ticket(thread)
        else:
            ticket = ticket_of_thread(context.session, context.profile.contact_center_id, thread)
        if ticket is not None and ticket.campaign_id == context.campaign_id:
            return ticket
        for token in find_case_tokens(message.subject):
            ticket = ticket_by_case_token(context.session, context.profile.contact_center_id, token)
            if ticket is not None and ticket.campaign_id == context.campaign_id:
                return ticket
        return None


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    return [CaseIdResolver]
