"""What a fetch cycle starts from: its profile's row in one query, and the plugin and settings built from it.

An empty cycle (issue 16) should cost one short transaction. It reads the profile's configuration,
its status, its protocol state and whether it has an OAuth grant with one Core ``SELECT`` (not an
ORM load of the profile, a second one of the state and a third of the grant), and it reuses the
protocol plugin class and connection settings built for the profile's last cycle as long as the
row's configuration columns, the grant and the plugin registered for the protocol are unchanged:
``profile modify`` (or an edit in SQL, or a new grant) changes the row, which rebuilds them.

On PostgreSQL the same query also turns ``synchronous_commit`` off for its transaction
(``set_config(..., true)``, no extra round trip). That transaction ends the cycle only when the
mailbox had nothing to store or acknowledge: a cycle with mail commits it before storing, and every
batch, and the outcome after, commits synchronously as before. So only an empty cycle's record
(status, last and next fetch, the lease's release, a moved protocol cursor) is committed without
waiting for the WAL to reach the disk: 5 ms of a fetch thread's time on a busy disk, for a row a
database crash may take back to its last flushed state, which the leases already allow for (a
held lease runs out; the next cycle lists again and the ledger knows what it stored).

A profile whose access token comes from a hook (it has an OAuth grant, or a plugin other than the
builtin providers answers ``postroom_get_access_token``) is built anew every cycle, as before:
tokens expire, and the hook is asked with the loaded profile.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, func, literal, select
from sqlalchemy.orm import Session

from postroom.core.contract.protocols import ConnectionSettings, ProtocolPlugin
from postroom.core.data.cycle_columns import CONFIGURATION_COLUMNS
from postroom.core.data.driver_sql import DriverStatement
from postroom.core.data.models import MediaProfile, OAuthGrant, ProtocolState
from postroom.core.plugin_host import PluginHost
from postroom.core.servers import incoming_protocol, incoming_settings

_PROFILE = cast(Table, MediaProfile.__table__)
_STATE = cast(Table, ProtocolState.__table__)
_GRANT = cast(Table, OAuthGrant.__table__)

_CONFIGURATION = [_PROFILE.c[name] for name in CONFIGURATION_COLUMNS]

_READ = (
    select(
        *_CONFIGURATION,
        _GRANT.c.id.label("grant_id"),
        _PROFILE.c.status,
        _PROFILE.c.consecutive_failures,
        _STATE.c.state.label("sync_state"),
    )
    .select_from(
        _PROFILE.outerjoin(
            _STATE,
            and_(_STATE.c.media_profile_id == _PROFILE.c.id, _STATE.c.protocol == _PROFILE.c.fetch_protocol),
        ).outerjoin(_GRANT, _GRANT.c.media_profile_id == _PROFILE.c.id)
    )
    .where(_PROFILE.c.id == bindparam("profile"))
)
_READ_POSTGRESQL = _READ.add_columns(
    func.set_config(literal("synchronous_commit"), literal("off"), literal(True)).label("relaxed")
)
_READ_DIRECT = DriverStatement(_READ_POSTGRESQL)
#: The row's configuration columns and its grant's id: what the cached settings were built from.
_KEY_WIDTH = len(_CONFIGURATION) + 1


def read_profile(session: Session, profile_id: int) -> Row[Any] | None:
    """The profile's row as a fetch cycle needs it (configuration, status, ``sync_state``, ``grant_id``).

    On PostgreSQL the transaction it begins commits without waiting for the disk (see above), and
    the query runs on the DBAPI cursor (``core/data/driver_sql.py``): the row is then a named tuple
    of the same columns, which the cycle reads the same way (by name, and its first columns as the key).
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return cast("Row[Any] | None", _READ_DIRECT.first(connection, {"profile": profile_id}))
    return cast("Row[Any] | None", connection.execute(_READ, {"profile": profile_id}).first())


@dataclass(frozen=True)
class _Built:
    key: tuple[Any, ...]
    plugin_class: type[ProtocolPlugin]
    settings: ConnectionSettings


class CycleConfigs:
    """Per profile, the plugin class and settings of its last cycle, kept while its row is unchanged.

    Shared by a worker's fetch threads; a profile is fetched by one thread at a time.
    """

    def __init__(self) -> None:
        self._built: dict[int, _Built] = {}
        self._lock = threading.Lock()
        #: How many times settings were built (for tests and the bench; a cache hit adds nothing).
        self.builds = 0

    def get(self, session: Session, row: Row[Any], plugins: PluginHost) -> tuple[ProtocolPlugin, ConnectionSettings]:
        """The plugin and settings (without ``sync_state``) for the profile ``row`` was read for."""
        key = tuple(row[:_KEY_WIDTH])
        registered = plugins.protocols.get(row.fetch_protocol)
        asks_hook = row.grant_id is not None or plugins.tokens_without_grant()
        with self._lock:
            built = None if asks_hook else self._built.get(row.id)
        if built is not None and built.key == key and built.plugin_class is registered:
            return built.plugin_class(), built.settings
        # The builders, and any token hook, take the profile itself: load it (an ORM object).
        profile = session.get(MediaProfile, row.id)
        if profile is None:  # deleted between the two reads of this transaction: cannot happen
            raise LookupError(f"media profile {row.id} vanished")
        plugin = incoming_protocol(profile, plugins)
        settings = incoming_settings(profile, plugins)
        with self._lock:
            self.builds += 1
            if asks_hook or settings.access_token is not None:
                self._built.pop(row.id, None)
            else:
                self._built[row.id] = _Built(key, type(plugin), settings)
        return plugin, settings

    def forget(self, profile_id: int) -> None:
        with self._lock:
            self._built.pop(profile_id, None)
