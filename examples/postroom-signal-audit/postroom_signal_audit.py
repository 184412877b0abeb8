"""postroom-signal-audit: one JSON line per stored mail, appended to an audit file.

The example of docs/plugins/signals.md. It subscribes to postroom's ``message-stored`` signal in
its start-up hook, and returns the disconnect, so that ``postroom plugins disable signal-audit``
followed by ``postroom reload`` stops it in running workers. The file is named by
``$POSTROOM_SIGNAL_AUDIT_FILE``; without it the plugin does nothing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from postroom import events, hookimpl

AUDIT_FILE_ENV = "POSTROOM_SIGNAL_AUDIT_FILE"

#: Receivers run on the thread that sends (a worker fetches profiles on several threads).
_lock = threading.Lock()


def on_message_stored(sender: object, **kwargs: Any) -> None:
    """Append ``{"signal": "message-stored", "profile_id": .., "message_pk": .., "message_id": ..}``."""
    path = os.environ.get(AUDIT_FILE_ENV)
    if not path:
        return
    line = json.dumps({"signal": "message-stored", "pid": os.getpid(), **kwargs}, default=str)
    with _lock, open(path, "a", encoding="utf-8") as audit:
        audit.write(line + "\n")


@hookimpl
def postroom_startup(app: Any) -> Callable[[], None]:
    """Connect the receiver; postroom calls what this returns on disable, reload and shut-down."""
    events.message_stored.connect(on_message_stored)
    return lambda: events.message_stored.disconnect(on_message_stored)
