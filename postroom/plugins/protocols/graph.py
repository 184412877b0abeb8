"""The ``graph`` protocol: fetch from and send through Microsoft Graph (Exchange Online, Microsoft 365).

Exchange Online blocks EWS for apps not allow-listed since October 2026 and ends it in April 2027;
Graph is its successor. The bearer token comes from a ``postroom_get_access_token`` plugin (e.g.
the ``microsoft`` provider); the profile's user name names the mailbox (``/users/{username}``);
the host defaults to graph.microsoft.com and may name another Graph endpoint (a national cloud,
or a test stand-in). Choices an operator should know, each explained where it is made: listing by
delta query with the link kept per profile (``graph_mailbox``), deleted mail goes to Recoverable
Items, sent mail is kept in Sent Items by Exchange, large mail goes by draft + upload session
(``graph_sender``), throttling is honoured (``graph_client``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.retry import ErrorCategory
from postroom.plugins.protocols.base import (
    ConnectionSettings,
    Mailbox,
    ProtocolPlugin,
    Sender,
)

if TYPE_CHECKING:
    from postroom.core.contract.protocols import SendFailure
    from postroom.core.data.models import MediaProfile

#: Graph error codes whose category the enhanced status code alone would get wrong: a message
#: too big for Exchange must change before any retry can succeed, so it is a content error.
GRAPH_CATEGORIES = {
    "ErrorMessageSizeExceeded": ErrorCategory.MESSAGE_CONTENT,
}


class GraphProtocol(ProtocolPlugin):
    """Microsoft Graph's mail API (v1.0), over https with an OAuth2 bearer token."""

    NAME = "graph"
    LABEL = "Microsoft Graph (Microsoft 365, Exchange Online)"
    DEFAULT_PORT = 443
    DEFAULT_FOLDER = "Inbox"
    NEEDS_HOST = False  # graph.microsoft.com unless the profile names another endpoint
    CAN_FETCH = True
    CAN_SEND = True
    KEEPS_SENT_COPY = True

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        from postroom.plugins.protocols.graph_mailbox import GraphMailbox

        return GraphMailbox(settings)

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        from postroom.plugins.protocols.graph_sender import GraphSender

        return GraphSender(settings)


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [GraphProtocol]


@hookimpl
def postroom_classify_send_error(error: SendFailure, profile: MediaProfile) -> ErrorCategory | None:
    """Graph's own codes first (``GRAPH_CATEGORIES``); everything else by the builtin classifier."""
    return GRAPH_CATEGORIES.get(getattr(error, "graph_code", ""))
