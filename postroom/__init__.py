"""postroom: an email channel engine for contact centres.

What a plugin author imports lives here: ``hookimpl`` to mark hook implementations, the base
classes of the three plugin kinds (protocols, resolvers, retry policies), every type the hooks
pass or return, and the functions that keep a plugin's own values on tickets. They are defined in
``postroom.core.contract`` (the ticket attributes in ``postroom.core.data.plugin_data``); the
plugin author's guide is docs/plugins/README.md, and ``postroom.testing`` runs a mail through
postroom in a plugin's own tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from postroom.core.contract.bounces import BounceReport, FailedRecipient, Reason
from postroom.core.contract.drafts import OutgoingAttachment, OutgoingDraft
from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.mail import AttachmentInfo, ParsedMail
from postroom.core.contract.plugin_data import TicketAttributes
from postroom.core.contract.protocols import (
    NO_PROTOCOL,
    ConnectionSettings,
    FailureKind,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolError,
    ProtocolPlugin,
    Sender,
    SendFailure,
    SendReport,
)
from postroom.core.contract.resolvers import ResolverContext, ResolverPlugin
from postroom.core.contract.retry import (
    ErrorCategory,
    RetryContext,
    RetryDecision,
    RetryPolicy,
    RetrySettings,
)
from postroom.core.contract.routing import InboundVerdict, RouteChoice

if TYPE_CHECKING:
    from postroom.core.data.plugin_data import (
        delete_ticket_attribute,
        find_open_ticket_by_attribute,
        get_ticket_attribute,
        set_ticket_attribute,
        ticket_attributes,
    )

#: The ticket-attribute functions work on the database, so they bring SQLAlchemy with them (about
#: 33 MiB of a process). They are imported when first asked for, so that ``import postroom`` and a
#: protocol plugin's module (which imports its base classes from here or from the contract) stay
#: free of it: a process that only talks to mail servers need not carry the database stack.
_TICKET_ATTRIBUTE_FUNCTIONS = frozenset(
    {
        "delete_ticket_attribute",
        "find_open_ticket_by_attribute",
        "get_ticket_attribute",
        "set_ticket_attribute",
        "ticket_attributes",
    }
)


def __getattr__(name: str) -> Any:
    if name in _TICKET_ATTRIBUTE_FUNCTIONS:
        from postroom.core.data import plugin_data

        value = getattr(plugin_data, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'postroom' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "NO_PROTOCOL",
    "AttachmentInfo",
    "BounceReport",
    "ConnectionSettings",
    "ErrorCategory",
    "FailedRecipient",
    "FailureKind",
    "FetchedMail",
    "InboundVerdict",
    "MailRef",
    "Mailbox",
    "NotFoundError",
    "OutgoingAttachment",
    "OutgoingDraft",
    "ParsedMail",
    "ProtocolError",
    "ProtocolPlugin",
    "Reason",
    "ResolverContext",
    "ResolverPlugin",
    "RetryContext",
    "RetryDecision",
    "RetryPolicy",
    "RetrySettings",
    "RouteChoice",
    "SendFailure",
    "SendReport",
    "Sender",
    "TicketAttributes",
    "UserError",
    "__version__",
    "delete_ticket_attribute",
    "find_open_ticket_by_attribute",
    "get_ticket_attribute",
    "hookimpl",
    "set_ticket_attribute",
    "ticket_attributes",
]
