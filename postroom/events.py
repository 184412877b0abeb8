"""Every signal postroom sends, for plugins and embedding code to subscribe to (public API).

Signals *inform*: a receiver hears what happened after it is committed and cannot change it (hooks
change what happens). They are blinker signals in blinker's default namespace, so both idioms work::

    from postroom import events
    events.message_stored.connect(receiver)          # this module's name for the signal
    blinker.signal("message-stored").connect(receiver)  # the usual blinker idiom: the same signal

A receiver is called ``receiver(sender, **kwargs)``; the keyword arguments of each signal are in its
``__doc__`` (``events.message_stored.__doc__``) and in docs/plugins/signals.md. A plugin connects its
receivers in its ``postroom_startup`` hook and returns the disconnect, so that a disabled plugin
hears nothing after ``postroom reload`` (connecting at import time would keep it receiving).
"""

from __future__ import annotations

from blinker import NamedSignal

from postroom.core.contract import events as _contract
from postroom.core.contract.events import (
    config_reloaded,
    failure_mail_received,
    message_duplicate,
    message_fetched,
    message_quarantined,
    message_routed,
    message_stored,
    message_unrouted,
    profile_deleted,
    profile_error,
    profile_recovered,
    reply_queued,
    retry_scheduled,
    send_abandoned,
    send_failed,
    send_succeeded,
    ticket_created,
    ticket_escalated,
    ticket_updated,
)

#: Every signal postroom sends, by its blinker name (``"message-stored"``), including any added later.
SIGNALS: dict[str, NamedSignal] = {
    value.name: value for value in vars(_contract).values() if isinstance(value, NamedSignal)
}

__all__ = [
    "SIGNALS",
    "config_reloaded",
    "failure_mail_received",
    "message_duplicate",
    "message_fetched",
    "message_quarantined",
    "message_routed",
    "message_stored",
    "message_unrouted",
    "profile_deleted",
    "profile_error",
    "profile_recovered",
    "reply_queued",
    "retry_scheduled",
    "send_abandoned",
    "send_failed",
    "send_succeeded",
    "ticket_created",
    "ticket_escalated",
    "ticket_updated",
]
