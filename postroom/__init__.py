"""postroom: an email channel engine for contact centres.

What a plugin author imports lives here: ``hookimpl`` to mark hook implementations, the base
classes of the three plugin kinds (protocols, resolvers, retry policies) and every type the hooks
pass or return. They are defined in ``postroom.core.contract``; docs/architecture.md maps the rest.
"""

from __future__ import annotations

from postroom.core.contract.bounces import BounceReport, FailedRecipient, Reason
from postroom.core.contract.drafts import OutgoingAttachment, OutgoingDraft
from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.mail import AttachmentInfo, ParsedMail
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
from postroom.core.contract.retry import ErrorCategory, RetryDecision, RetryPolicy, RetrySettings
from postroom.core.contract.routing import InboundVerdict, RouteChoice

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
    "RetryDecision",
    "RetryPolicy",
    "RetrySettings",
    "RouteChoice",
    "SendFailure",
    "SendReport",
    "Sender",
    "UserError",
    "__version__",
    "hookimpl",
]
