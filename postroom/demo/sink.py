"""The demo's own send protocol, ``demo-sink``: a Maildir that turns some recipients away like a server.

Only ``postroom demo`` registers it (``Postroom(..., extra_plugins=...)``); no other postroom
process knows it, so it can never stand in for a real server by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence

from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.protocols import (
    ConnectionSettings,
    ProtocolPlugin,
    Sender,
    SendFailure,
    SendReport,
)
from postroom.plugins.protocols.maildir import MaildirProtocol


def refusal(recipient: str) -> SendFailure | None:
    """How the sink answers ``recipient``: a server's refusal, or None when it takes the mail."""
    address = recipient.strip().strip("<>")
    local, _, domain = address.rpartition("@")
    if domain.lower().endswith(".invalid") or local.lower().startswith("refuse"):
        return SendFailure(
            f"550 5.1.1 <{address}>: Recipient address rejected: User unknown",
            reply_code=550,
            recipient=recipient,
        )
    if local.lower().startswith("busy"):
        return SendFailure(
            f"452 4.2.2 <{address}>: Mailbox full, try again later",
            reply_code=452,
            recipient=recipient,
        )
    return None


class DemoSinkSender(Sender):
    """A Maildir sender that answers like a mail server, so the demo shows refusals and a retry.

    ``550 5.1.1`` (unknown user, never retried) for every recipient whose domain ends in
    ``.invalid`` (reserved by RFC 2606, never a real domain) or whose local part starts with
    ``refuse``; ``452 4.2.2`` (mailbox full, retried later) for every recipient whose local part
    starts with ``busy``. Every refusal is in the report; the mail is written once if anyone
    accepted it, and not at all when every recipient was refused.
    """

    def __init__(self, maildir: Sender) -> None:
        self.maildir = maildir

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendReport:
        refused = {addr: failure for addr in recipients if (failure := refusal(addr)) is not None}
        accepted = [addr for addr in recipients if addr not in refused]
        if accepted or not recipients:
            self.maildir.send(envelope_from, accepted, raw)
        return SendReport(refused=refused)

    def close(self) -> None:
        self.maildir.close()


class DemoSinkProtocol(ProtocolPlugin):
    """Send-only: the outgoing folder is the path of the Maildir sent mail is written to.

    That Maildir is also the copy of the sent mail (hence ``KEEPS_SENT_COPY``).
    """

    NAME = "demo-sink"
    LABEL = "The demo's Maildir sink (refuses busy*, refuse* and *.invalid recipients)"
    CAN_SEND = True
    NEEDS_HOST = False
    NEEDS_FOLDER = True
    KEEPS_SENT_COPY = True

    def open_sender(self, settings: ConnectionSettings) -> Sender:
        return DemoSinkSender(MaildirProtocol().open_sender(settings))


@hookimpl
def postroom_register_protocols() -> list[type[ProtocolPlugin]]:
    return [DemoSinkProtocol]
