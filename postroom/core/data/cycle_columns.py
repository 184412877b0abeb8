"""The profile columns a fetch cycle reads: what its plugin and settings are built from, and its cache key.

One list for the engine's read (``core/inbound/cycle_config.py``) and the standby's
(``core/worker/standby_sql.py``); a module of its own, importing nothing, because the standby
must not load the database stack.
"""

from __future__ import annotations

#: What the incoming plugin and settings are built from (``servers.incoming_settings``) and what
#: the cycle itself reads: the cache key. Not the whole row: every column read is decoded every
#: cycle, and the outgoing side, signatures and the like are no business of a fetch.
CONFIGURATION_COLUMNS = (
    "id",
    "name",
    "fetch_protocol",
    "incoming_allowed",
    "incoming_host",
    "incoming_port",
    "incoming_folder",
    "username",
    "password_encrypted",
    "tls_verify",
    "allow_plaintext_login",
    "fetch_interval",
    "fetch_last_days",
    "delete_on_fetch",
    "deleted_at",
)
