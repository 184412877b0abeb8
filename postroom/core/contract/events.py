"""Every blinker signal postroom sends. Signals inform; they never change what happens (hooks do).

The sender is always the engine object that did the work (the fetcher, the outbox, the ticket
service...). Data travels as keyword arguments; return values of receivers are ignored.
A signal about stored data is sent once that data is committed (:func:`emit` inside
:func:`held`): a receiver can read it from its own session, and work that is rolled back (a
failed batch, a savepoint a broken plugin undid) never announces anything.
Receivers run on the thread that sends: the outbox's signals (send-succeeded, send-failed,
retry-scheduled, send-abandoned) come from its outcome-writer thread, after each commit, so a
receiver that keeps state shared with other threads guards it. A receiver that raises is logged
(once, with its traceback and its name) and ignored: the work is committed already, and a
subscriber's bug must neither stop a send run nor put a profile in error.

Plugin authors import these from :mod:`postroom.events` (docs/plugins/signals.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import blinker
from blinker import NamedSignal

#: Signals live in blinker's default namespace, so the usual idiom ``blinker.signal("message-stored")``
#: returns the very signal postroom sends (``postroom.events.message_stored`` is the same object).
_signals = blinker.default_namespace
log = logging.getLogger(__name__)

# --- inbound -----------------------------------------------------------------------------------

message_fetched = _signals.signal(
    "message-fetched",
    doc="""A mail was downloaded from a profile's mailbox, before it is stored.

    kwargs: profile_id (int), mailbox_key (str), size (int). Fires for every downloaded mail,
    also for those that turn out to be duplicates or are quarantined.""",
)
message_stored = _signals.signal(
    "message-stored",
    doc="""An inbound mail was written to the database (sent once its fetch batch is committed).

    kwargs: profile_id (int), message_pk (int), message_id (str | None), date (datetime | None:
    its Date header). Fires once per stored mail, after its batch commits; not for duplicates.""",
)
message_duplicate = _signals.signal(
    "message-duplicate",
    doc="""A fetched mail's Message-ID was already stored for the same profile; it was not stored again.

    kwargs: profile_id (int), mailbox_key (str), message_id (str).""",
)
message_quarantined = _signals.signal(
    "message-quarantined",
    doc="""A mail could not be parsed or broke a plugin; it is stored raw with the reason.

    kwargs: profile_id (int), message_pk (int), reason (str).""",
)
message_unrouted = _signals.signal(
    "message-unrouted",
    doc="""No routing rule matched a stored mail; it is held until a rule changes.

    kwargs: profile_id (int), message_pk (int).""",
)
message_routed = _signals.signal(
    "message-routed",
    doc="""A mail was routed to a campaign and queue (also when a held mail is re-routed).

    kwargs: profile_id (int), message_pk (int), campaign_id (int), queue_id (int | None).""",
)

# --- tickets -----------------------------------------------------------------------------------

ticket_created = _signals.signal(
    "ticket-created",
    doc="""A new ticket was opened (by a mail no resolver matched, a bounce, or a split).

    kwargs: ticket_id (int), campaign_id (int), customer_id (int | None).""",
)
ticket_updated = _signals.signal(
    "ticket-updated",
    doc="""A ticket changed: a message appended, closed, merged into another, or reopened.

    kwargs: ticket_id (int), change (str: "appended", "closed", "merged", "split").""",
)
ticket_escalated = _signals.signal(
    "ticket-escalated",
    doc="""A ticket got the escalation mark (a bounce concerning its customer).

    kwargs: ticket_id (int), reason (str).""",
)
failure_mail_received = _signals.signal(
    "failure-mail-received",
    doc="""A bounce was stored: from a configured failure-mail address, or about a reply postroom sent.

    kwargs: profile_id (int), message_pk (int), recipients (list[str]): the failed recipients read
    from it; hard (bool): whether it escalated its ticket; ticket_id (int | None).""",
)

# --- outbound ----------------------------------------------------------------------------------

reply_queued = _signals.signal(
    "reply-queued",
    doc="""An agent's reply was committed to the outbox.

    kwargs: send_info_id (int), ticket_id (int), profile_id (int), message_id (str).""",
)
send_succeeded = _signals.signal(
    "send-succeeded",
    doc="""A queued reply was accepted by the outgoing server for every pending recipient.

    kwargs: send_info_id (int), profile_id (int), attempts (int).""",
)
send_failed = _signals.signal(
    "send-failed",
    doc="""A send attempt failed (for all or some recipients).

    kwargs: send_info_id (int), category (str), policy (str), text (str), recipients (list[str]).""",
)
retry_scheduled = _signals.signal(
    "retry-scheduled",
    doc="""After a failed attempt, the policy scheduled another.

    kwargs: send_info_id (int), next_attempt_at (datetime), policy (str), attempt (int).""",
)
send_abandoned = _signals.signal(
    "send-abandoned",
    doc="""A reply will not be tried again: its policy says no retry, or the retries are used up.

    kwargs: send_info_id (int), category (str), policy (str), attempts (int).""",
)

# --- profiles and configuration ------------------------------------------------------------------

profile_error = _signals.signal(
    "profile-error",
    doc="""A profile's server failed (login, TLS, network, folder); the profile is marked in error.

    kwargs: profile_id (int), reason (str), kind (str). Fires on every failed cycle.""",
)
profile_recovered = _signals.signal(
    "profile-recovered",
    doc="""A profile that was in error worked again; its error was cleared.

    kwargs: profile_id (int).""",
)
profile_deleted = _signals.signal(
    "profile-deleted",
    doc="""A profile was deleted (this cannot be undone).

    kwargs: profile_id (int), name (str).""",
)
config_reloaded = _signals.signal(
    "config-reloaded",
    doc="""Running workers were asked to re-read profiles, rules and retry settings (``postroom reload``).

    kwargs: generation (int): the new configuration generation.""",
)


# --- sending once the work is kept -------------------------------------------------------------

_Pending = list[tuple[NamedSignal, object, dict[str, Any]]]
_held: ContextVar[_Pending | None] = ContextVar("postroom_held_signals", default=None)


class Later:
    """A signal argument known only at the next flush (a new ticket's id): read when the signal goes out.

    For :func:`emit` inside :func:`held`, where the signal waits for the commit anyway; the inbound
    pipeline creates a batch's tickets in one INSERT at the end of the batch and names them this way.
    """

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], Any]) -> None:
        self.read = read


def _send(signal: NamedSignal, sender: object, kwargs: dict[str, Any]) -> None:
    """``signal.send``, but a receiver that raises is logged and the others still hear the signal."""
    if any(isinstance(value, Later) for value in kwargs.values()):
        kwargs = {key: value.read() if isinstance(value, Later) else value for key, value in kwargs.items()}
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            name = f"{getattr(receiver, '__module__', '?')}.{getattr(receiver, '__qualname__', receiver)}"
            log.exception("receiver %s of signal %s raised; ignored", name, signal.name)


def send_now(signal: NamedSignal, sender: object, **kwargs: Any) -> None:
    """Send ``signal`` at once, also inside :func:`held` (for news that is not about committed data)."""
    _send(signal, sender, kwargs)


def emit(signal: NamedSignal, sender: object, **kwargs: Any) -> None:
    """Send ``signal`` now, or, inside :func:`held`, once the held block ends without an error."""
    pending = _held.get()
    if pending is None:
        _send(signal, sender, kwargs)
    else:
        pending.append((signal, sender, kwargs))


@contextmanager
def held() -> Iterator[None]:
    """Hold what :func:`emit` sends in the block until the block ends; drop it if the block raises.

    Wrapped around a transaction (``with held(), session.begin():``) the signals go out after
    the commit. Blocks nest: an inner block that ends well hands its signals to the outer one,
    so a savepoint's signals wait for the commit of the transaction around it.
    """
    outer = _held.get()
    pending: _Pending = []
    token = _held.set(pending)
    try:
        yield
    finally:
        _held.reset(token)
    if outer is not None:
        outer.extend(pending)
        return
    for signal, sender, kwargs in pending:
        _send(signal, sender, kwargs)
