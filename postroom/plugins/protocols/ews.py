"""The ``ews`` protocol: fetch from and send through Microsoft Exchange Web Services, with exchangelib.

Choices an operator should know (each explained where it is made, in ``ews_mailbox`` and
``ews_connection``): the login method is negotiated with the server; deleted mail goes to the
recoverable-items dumpster; sent mail is saved to Sent Items by Exchange itself; switching TLS
verification off applies per EWS server, not per profile. exchangelib is imported only when an
EWS profile connects: it takes a third of a second, which every ``postroom`` command would pay.
"""

from __future__ import annotations

from postroom.core.contract.hooks import hookimpl
from postroom.plugins.protocols.base import (
    ConnectionSettings,
    Mailbox,
    ProtocolError,
    ProtocolPlugin,
    Sender,
    SendFailure,
)


class EwsProtocol(ProtocolPlugin):
    """Microsoft Exchange Web Services; the host is a server name or the full EWS URL."""

    NAME = "ews"
    LABEL = "Microsoft Exchange Web Services"
    DEFAULT_PORT = 443
    DEFAULT_FOLDER = "Inbox"
    CAN_FETCH = True
    CAN_SEND = True
    KEEPS_SENT_COPY = True

    def open_mailbox(self, settings: ConnectionSettings) -> Mailbox:
        from postroom.plugins.protocols.ews_mailbox import EwsMailbox

        return EwsMailbox(settings)

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        from postroom.plugins.protocols.ews_mailbox import EwsSender

        try:
            return EwsSender(settings)
        except ProtocolError as error:
            raise SendFailure(str(error), kind=error.kind) from error


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [EwsProtocol]
