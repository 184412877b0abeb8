"""postroom: an email channel engine for contact centres.

What a plugin author imports lives here: ``hookimpl`` to mark hook implementations and
the base classes of the three plugin kinds (protocols, resolvers, retry policies).
"""

from __future__ import annotations

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.protocols import (
    ConnectionSettings,
    FetchedMail,
    Mailbox,
    MailRef,
    ProtocolPlugin,
    Sender,
    SendFailure,
    SendReport,
)
from postroom.core.contract.resolvers import ResolverContext, ResolverPlugin
from postroom.core.contract.retry import RetryDecision, RetryPolicy, RetrySettings

__version__ = "0.1.0"

__all__ = [
    "ConnectionSettings",
    "FetchedMail",
    "MailRef",
    "Mailbox",
    "ProtocolPlugin",
    "ResolverContext",
    "ResolverPlugin",
    "RetryDecision",
    "RetryPolicy",
    "RetrySettings",
    "SendFailure",
    "SendReport",
    "Sender",
    "__version__",
    "hookimpl",
]
