"""The standby worker's SQL (``standby_store.py`` runs it): each statement beside the engine's original it copies.

Kept apart from the store's machinery so that the statements can be read, and held against their
SQLAlchemy originals (``tests/worker/test_standby_store.py``), in one place. No SQLAlchemy here
either: plain text, with the store's small placeholder syntax (below).
"""

from __future__ import annotations

import re

from postroom.core.data.cycle_columns import CONFIGURATION_COLUMNS

# Values of the engine's own modules, which import SQLAlchemy; the tests check each is the same.
#: ``ProfileStatus.OK``.
STATUS_OK = "ok"
#: ``configuration.GENERATION``.
GENERATION = "config_generation"
#: ``idle_switch.KEY``.
IDLE_KEY = "idle"
#: ``fetch.LEDGER_LOOKUP_CHUNK``.
LEDGER_LOOKUP_CHUNK = 500
#: ``SendState``: the states ``claims.due`` sends from.
SEND_DUE_STATES = ("queued", "retry-scheduled")
SEND_SENDING = "sending"
#: A pooled connection that rested longer than this is pinged before use (``core/data/pool.py``).
PING_AFTER_IDLE = 10.0

# The statements. ``:name`` is a parameter (``%(name)s`` on psycopg2), ``:name*`` a list of them
# (an ``IN``), ``{true}`` SQL's true as SQLAlchemy spells it per dialect, ``{skip_locked}`` the
# claim's row locking on PostgreSQL.

#: ``leases._CLAIM`` (with ``MediaProfile.can_fetch``).
_CLAIM = """UPDATE media_profile SET lease_owner=:worker, lease_expires_at=:expires
WHERE media_profile.id IN (SELECT media_profile.id FROM media_profile
WHERE media_profile.deleted_at IS NULL AND media_profile.incoming_allowed IS {true}
AND media_profile.fetch_protocol != :no_protocol
AND (media_profile.next_fetch_at IS NULL OR media_profile.next_fetch_at <= :now OR media_profile.lease_owner IS NOT NULL)
AND (media_profile.lease_owner IS NULL OR media_profile.lease_expires_at < :now)
ORDER BY media_profile.next_fetch_at ASC NULLS FIRST, media_profile.id LIMIT :limit{skip_locked})
RETURNING media_profile.id"""

#: ``cycle_config._READ``, with ``idle_switch.idle_enabled``'s query as a column.
_READ = f"""SELECT {", ".join(f"media_profile.{name}" for name in CONFIGURATION_COLUMNS)},
oauth_grant.id AS grant_id, media_profile.status, media_profile.consecutive_failures,
protocol_state.state AS sync_state,
(SELECT media_profile_configuration.media_profile_properties FROM media_profile_configuration
WHERE media_profile_configuration.media_profile_id = media_profile.id
ORDER BY media_profile_configuration.id DESC LIMIT 1) AS properties
FROM media_profile LEFT OUTER JOIN protocol_state ON protocol_state.media_profile_id = media_profile.id
AND protocol_state.protocol = media_profile.fetch_protocol
LEFT OUTER JOIN oauth_grant ON oauth_grant.media_profile_id = media_profile.id
WHERE media_profile.id = :profile"""

#: ``fetch._known_keys`` (one chunk).
_KNOWN_KEYS = """SELECT fetch_ledger.mailbox_key FROM fetch_ledger
WHERE fetch_ledger.media_profile_id = :profile AND fetch_ledger.mailbox_key IN (:keys*)"""

#: ``leases._RELEASE`` with an OK outcome.
_RELEASE = """UPDATE media_profile SET status=:status, last_error=NULL, consecutive_failures=0,
last_fetch_at=:now, next_fetch_at=:due, lease_owner=NULL, lease_expires_at=NULL
WHERE media_profile.id = :profile AND media_profile.lease_owner = :worker RETURNING media_profile.id"""
#: ``cycle_config``'s ``set_config('synchronous_commit', 'off', true)``, in the same round trip.
_RELAXED = "SET LOCAL synchronous_commit TO off; "

#: ``outcome._OUTCOME`` with an OK outcome (``record_outcome``).
_OUTCOME = """UPDATE media_profile SET status=:status, last_error=NULL, consecutive_failures=0,
last_fetch_at=:now WHERE media_profile.id = :profile"""

#: ``idle_schedule.hold_after_cycle``'s UPDATE.
_HOLD = """UPDATE media_profile SET lease_owner=:worker, lease_expires_at=:expires
WHERE media_profile.id = :profile AND media_profile.lease_owner IS NULL RETURNING media_profile.id"""

#: ``leases.renew_leases``.
_RENEW = """UPDATE media_profile SET lease_expires_at=:expires
WHERE media_profile.id IN (:ids*) AND media_profile.lease_owner = :worker RETURNING media_profile.id"""

#: Give leases back (``release_all`` for some profiles), the next fetch left alone or set.
_LET_GO = """UPDATE media_profile SET lease_owner=NULL, lease_expires_at=NULL
WHERE media_profile.id IN (:ids*) AND media_profile.lease_owner = :worker"""
_LET_GO_DUE = """UPDATE media_profile SET lease_owner=NULL, lease_expires_at=NULL, next_fetch_at=:due
WHERE media_profile.id IN (:ids*) AND media_profile.lease_owner = :worker"""

#: ``leases.adopt_leases``: renew every lease of this worker, with each profile's next poll.
_ADOPT = """UPDATE media_profile SET lease_expires_at=:expires
WHERE media_profile.lease_owner = :worker RETURNING media_profile.id, media_profile.next_fetch_at"""

#: ``Postroom.disabled_plugin_names``.
_DISABLED = "SELECT plugin_switch.name FROM plugin_switch WHERE NOT plugin_switch.enabled"

#: ``leases.release_all``.
_RELEASE_ALL = """UPDATE media_profile SET lease_owner=NULL, lease_expires_at=NULL
WHERE media_profile.lease_owner = :worker"""

#: ``configuration._GENERATION``.
_GENERATION = "SELECT engine_setting.value FROM engine_setting WHERE engine_setting.name = :name"

#: ``outbox._ANYTHING_DUE`` (``claims.due``).
_ANYTHING_DUE = """SELECT s_message_send_info.id FROM s_message_send_info
WHERE s_message_send_info.state IN (:due_states*)
AND (s_message_send_info.next_attempt_at <= :now OR s_message_send_info.next_attempt_at IS NULL)
OR s_message_send_info.state = :sending AND s_message_send_info.claim_expires_at <= :now LIMIT 1"""

_DIALECT_WORDS = {
    "sqlite": {"{true}": "1", "{skip_locked}": ""},
    "postgresql": {"{true}": "true", "{skip_locked}": " FOR UPDATE SKIP LOCKED"},
}
_PARAMETER = re.compile(r"(?<![:\w]):(\w+)(\*?)")
