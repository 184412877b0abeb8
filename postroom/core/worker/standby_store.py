"""The standby worker's database statements, on the bare DBAPI driver: no SQLAlchemy (issue 18).

An idle ``postroom run`` re-execs itself into a lean standby process so that its resident memory
stays small; SQLAlchemy's modules alone weigh more than the standby may. The standby still
claims due profiles, reads them, asks the fetch ledger and records empty cycles, so each of those
statements is written once more (``standby_sql.py``), in plain SQL run here on ``sqlite3`` or ``psycopg2``. Each must do
exactly what its SQLAlchemy original does (named beside it), on the same rows, written the same
way: the full engine reads what the standby wrote and the other way round. The tests
(``tests/worker/test_standby_store.py``) hold each against its original on SQLite and PostgreSQL.

Timestamps are stored as ``UTCDateTime`` stores them (``models/base.py``): naive UTC, which on
SQLite is SQLAlchemy's text ``YYYY-MM-DD HH:MM:SS.ffffff`` (always six digits of microseconds, so
that text comparisons such as ``next_fetch_at <= now`` order as times do). The API takes and
returns timezone-aware UTC datetimes.

Every method is one short transaction on a connection of a small pool shared by the standby's
threads (``standby_pool.py``), but :meth:`StandbyStore.cycle`: a standby cycle's read, ledger
question and record in one, as the engine's empty cycle; driver errors are raised as :class:`StandbyDatabaseError`, whose ``gone`` says that the
database cannot be used (the outage case) rather than that one statement was refused.
"""

from __future__ import annotations

import importlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import unquote

from postroom.core.contract.protocols import NO_PROTOCOL
from postroom.core.worker.standby_pool import Pool, StandbyDatabaseError, connect_sqlite, rollback
from postroom.core.worker.standby_sql import (
    _ADOPT,
    _ANYTHING_DUE,
    _CLAIM,
    _DIALECT_WORDS,
    _DISABLED,
    _GENERATION,
    _HOLD,
    _KNOWN_KEYS,
    _LET_GO,
    _LET_GO_DUE,
    _OUTCOME,
    _PARAMETER,
    _READ,
    _RELAXED,
    _RELEASE,
    _RELEASE_ALL,
    _RENEW,
    CONFIGURATION_COLUMNS,
    GENERATION,
    IDLE_KEY,
    LEDGER_LOOKUP_CHUNK,
    PING_AFTER_IDLE,
    SEND_DUE_STATES,
    SEND_SENDING,
    STATUS_OK,
)

__all__ = ["StandbyCycle", "StandbyDatabaseError", "StandbyProfile", "StandbyStore"]


@dataclass(frozen=True)
class StandbyProfile:
    """A profile's row as a fetch cycle starts from (``cycle_config.read_profile``) and its IDLE switch."""

    id: int
    name: str
    fetch_protocol: str
    incoming_allowed: bool
    incoming_host: str | None
    incoming_port: int | None
    incoming_folder: str | None
    username: str | None
    #: The Fernet token as stored (bytes, as the model and ``decrypt_password`` have it).
    password_encrypted: bytes | None
    tls_verify: bool
    allow_plaintext_login: bool
    fetch_interval: int
    fetch_last_days: int | None
    delete_on_fetch: bool
    deleted_at: datetime | None
    grant_id: int | None
    status: str
    consecutive_failures: int
    sync_state: str | None
    #: The IDLE switch, as ``idle_switch.idle_enabled`` reads it.
    idle: bool

    @property
    def can_fetch(self) -> bool:
        """``MediaProfile.can_fetch``."""
        return self.deleted_at is None and self.incoming_allowed and self.fetch_protocol != NO_PROTOCOL


class StandbyStore:
    """The standby's statements on a small pool of DBAPI connections; thread-safe."""

    def __init__(
        self, dialect: str, connect: Callable[[], Any], driver: Any, size: int, ping_after: float
    ) -> None:
        self.dialect = dialect
        self._driver = driver
        self._pool = Pool(connect, size, ping_after if dialect == "postgresql" else None, self._error)
        self._texts: dict[str, str] = {}

    @classmethod
    def open(cls, url: str, *, size: int = 4, ping_after: float = PING_AFTER_IDLE) -> Self:
        """A store on ``url`` as postroom takes it: ``sqlite:///PATH`` or ``postgresql[+psycopg2]://...``.

        Connects lazily (the first statement). Any other URL raises ``ValueError``.
        """
        scheme, separator, rest = url.partition("://")
        if not separator:
            raise ValueError(f"The standby worker cannot use the database URL {scheme!r}: it is not a URL.")
        if scheme in ("sqlite", "sqlite+pysqlite"):
            path = unquote(rest.removeprefix("/").partition("?")[0])
            if not path or path == ":memory:":
                raise ValueError(
                    "The standby worker needs a SQLite database file, not an in-memory database."
                )
            return cls("sqlite", lambda: connect_sqlite(path), sqlite3, size, ping_after)
        if scheme in ("postgresql", "postgresql+psycopg2"):
            try:
                psycopg2 = importlib.import_module("psycopg2")
            except ImportError:
                raise ValueError(
                    "The standby worker needs the Python module psycopg2 for PostgreSQL."
                ) from None
            dsn = f"postgresql://{rest}"
            return cls("postgresql", lambda: psycopg2.connect(dsn), psycopg2, size, ping_after)
        raise ValueError(
            f"The standby worker runs on SQLite (sqlite:///PATH) and on PostgreSQL through psycopg2, not {scheme!r}."
        )

    def close(self) -> None:
        self._pool.close()

    def generation(self) -> int:
        """``configuration.config_generation``."""
        with self._transaction() as run:
            rows = run(_GENERATION, {"name": GENERATION})
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def claim(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
        """``leases.claim_on``: lease up to ``limit`` due profiles nobody (alive) holds; their sorted ids."""
        if limit <= 0:
            return []
        parameters = {
            "worker": worker,
            "now": self._time(now),
            "expires": self._time(now + lease),
            "limit": limit,
            "no_protocol": NO_PROTOCOL,
        }
        with self._transaction() as run:
            rows = run(_CLAIM, parameters)
        return sorted(row[0] for row in rows)

    def read_profile(self, profile_id: int) -> StandbyProfile | None:
        """``cycle_config.read_profile``'s columns and the profile's IDLE switch; None if there is no such profile."""
        with self._transaction() as run:
            return self._read(run, profile_id)

    @contextmanager
    def cycle(self, profile_id: int) -> Iterator[StandbyCycle]:
        """One transaction for a standby cycle: the profile read as it begins, the empty cycle recorded as it ends.

        As the engine's empty cycle is one transaction (``cycle_config``: the read, then the
        release in the same session), not a read and a release apart. On PostgreSQL the read
        begins the transaction (READ COMMITTED: the release's UPDATE still sees every commit made
        meanwhile); on SQLite the driver begins it at the first write, so no snapshot is held while
        the mailbox is listed. Anything the block raises rolls it back (nothing written).
        """
        with self._transaction() as run:
            yield StandbyCycle(self, run, self._read(run, profile_id))

    def _read(self, run: _Run, profile_id: int) -> StandbyProfile | None:
        rows = run(_READ, {"profile": profile_id})
        if not rows:
            return None
        values = dict(
            zip((*CONFIGURATION_COLUMNS, "grant_id", "status", "consecutive_failures"), rows[0], strict=False)
        )
        sync_state, properties = rows[0][-2:]
        for name in ("incoming_allowed", "tls_verify", "allow_plaintext_login", "delete_on_fetch"):
            values[name] = bool(values[name])
        if values["password_encrypted"] is not None:
            values["password_encrypted"] = bytes(values["password_encrypted"])  # psycopg2: a memoryview
        values["deleted_at"] = self._read_time(values["deleted_at"])
        return StandbyProfile(**values, sync_state=sync_state, idle=_idle_enabled(properties))

    def known_keys(self, profile_id: int, keys: Sequence[str]) -> set[str]:
        """``fetch._known_keys``: which of ``keys`` the profile's fetch ledger holds (one query per chunk)."""
        if not keys:  # nothing to ask: no transaction
            return set()
        with self._transaction() as run:
            return self._known_keys(run, profile_id, keys)

    def _known_keys(self, run: _Run, profile_id: int, keys: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(keys), LEDGER_LOOKUP_CHUNK):
            chunk = list(keys[start : start + LEDGER_LOOKUP_CHUNK])
            known.update(row[0] for row in run(_KNOWN_KEYS, {"profile": profile_id, "keys": chunk}))
        return known

    def release_ok(self, worker: str, profile_id: int, now: datetime, due: datetime) -> bool:
        """``leases.release_after_cycle`` of a successful cycle: outcome, next fetch and the lease's release.

        Only if this worker still holds the lease; if not, the outcome alone is written (as
        ``record_outcome``) and False returned. On PostgreSQL the transaction commits without
        waiting for the disk, as an empty cycle's does in the engine (``cycle_config``).
        """
        with self._transaction() as run:
            return self._release_ok(run, worker, profile_id, now, due)

    def _release_ok(self, run: _Run, worker: str, profile_id: int, now: datetime, due: datetime) -> bool:
        parameters = {
            "status": STATUS_OK,
            "now": self._time(now),
            "due": self._time(due),
            "profile": profile_id,
            "worker": worker,
        }
        released = bool(run(_RELEASE, parameters, relaxed=self.dialect == "postgresql"))
        if not released:
            run(_OUTCOME, parameters)
        return released

    def hold(self, worker: str, profile_id: int, now: datetime, lease: timedelta) -> bool:
        """``idle_schedule.hold_after_cycle``'s UPDATE: take the lease again if nobody holds it."""
        with self._transaction() as run:
            return self._hold(run, worker, profile_id, now, lease)

    def _hold(self, run: _Run, worker: str, profile_id: int, now: datetime, lease: timedelta) -> bool:
        parameters = {"worker": worker, "expires": self._time(now + lease), "profile": profile_id}
        return bool(run(_HOLD, parameters))

    def renew(self, worker: str, profile_ids: Sequence[int], now: datetime, lease: timedelta) -> set[int]:
        """``leases.renew_leases``: extend this worker's leases; the ids it still holds."""
        if not profile_ids:
            return set()
        parameters = {"worker": worker, "expires": self._time(now + lease), "ids": list(profile_ids)}
        with self._transaction() as run:
            return {row[0] for row in run(_RENEW, parameters)}

    def let_go(self, worker: str, profile_ids: Sequence[int], due: datetime | None = None) -> int:
        """Give back this worker's leases on ``profile_ids``; with ``due``, the next fetch is set to it. How many."""
        if not profile_ids:
            return 0
        parameters: dict[str, Any] = {"worker": worker, "ids": list(profile_ids)}
        if due is not None:
            parameters["due"] = self._time(due)
        with self._transaction() as run:
            run(_LET_GO if due is None else _LET_GO_DUE, parameters)
            return run.rowcount()

    def adopt(self, worker: str, now: datetime, lease: timedelta) -> dict[int, datetime | None]:
        """``leases.adopt_leases``: what the engine this process was held to watch, renewed at once."""
        with self._transaction() as run:
            rows = run(_ADOPT, {"worker": worker, "expires": self._time(now + lease)})
        return {row[0]: self._read_time(row[1]) for row in rows}

    def disabled_plugins(self) -> set[str]:
        """``Postroom.disabled_plugin_names``: the plugins an operator switched off."""
        with self._transaction() as run:
            return {row[0] for row in run(_DISABLED, {})}

    def release_all(self, worker: str) -> int:
        """``leases.release_all``: give back every lease of this worker; the profiles stay due."""
        with self._transaction() as run:
            run(_RELEASE_ALL, {"worker": worker})
            return run.rowcount()

    def anything_due(self, now: datetime) -> bool:
        """``Outbox.anything_due``: whether a reply is due to be sent."""
        parameters = {"now": self._time(now), "due_states": list(SEND_DUE_STATES), "sending": SEND_SENDING}
        with self._transaction() as run:
            return bool(run(_ANYTHING_DUE, parameters))

    # -- the machinery ---------------------------------------------------------------------------

    def _time(self, value: datetime) -> Any:
        """A timestamp as ``UTCDateTime`` binds it: naive UTC; on SQLite, SQLAlchemy's DATETIME text."""
        if value.tzinfo is None:
            raise ValueError("postroom stores only timezone-aware datetimes")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        if self.dialect == "sqlite":
            return naive.strftime("%Y-%m-%d %H:%M:%S.%f")
        return naive

    def _read_time(self, value: Any) -> datetime | None:
        """A stored timestamp as ``UTCDateTime`` returns it: timezone-aware UTC."""
        if value is None:
            return None
        if isinstance(value, str):  # SQLite: SQLAlchemy reads the text with fromisoformat
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    def _text(self, sql: str, parameters: dict[str, Any]) -> str:
        """The statement's SQL for this dialect, ``IN`` lists expanded (``parameters`` gets their items)."""
        lengths = {name: len(value) for name, value in parameters.items() if isinstance(value, list)}
        if not lengths and (cached := self._texts.get(sql)) is not None:
            return cached
        for name in lengths:
            for index, item in enumerate(parameters.pop(name)):
                parameters[f"{name}_{index}"] = item
        postgresql = self.dialect == "postgresql"
        text = sql.replace("%", "%%") if postgresql else sql
        for word, spelling in _DIALECT_WORDS[self.dialect].items():
            text = text.replace(word, spelling)

        def placeholder(match: re.Match[str]) -> str:
            name, many = match.groups()
            names = [f"{name}_{index}" for index in range(lengths[name])] if many else [name]
            return ", ".join(f"%({each})s" if postgresql else f":{each}" for each in names)

        text = _PARAMETER.sub(placeholder, text)
        if not lengths:
            self._texts[sql] = text
        return text

    @contextmanager
    def _transaction(self) -> Iterator[_Run]:
        """One transaction on a pooled connection: committed, or rolled back and the error wrapped."""
        connection = self._pool.get()
        broken = False
        try:
            try:
                run = _Run(self, connection.cursor())
                yield run
                run.close()
                connection.commit()
            except BaseException as error:
                broken = rollback(connection, self._driver)
                if isinstance(error, self._driver.Error):
                    wrapped = self._error(error, connection)
                    broken = broken or wrapped.gone
                    raise wrapped from error
                raise
        finally:
            self._pool.put(connection, broken)

    def _error(self, error: BaseException, connection: Any = None) -> StandbyDatabaseError:
        """The driver's error as a StandbyDatabaseError; gone if the database or the connection went away."""
        driver = self._driver
        closed = self.dialect == "postgresql" and bool(getattr(connection, "closed", False))
        gone = closed or isinstance(error, driver.OperationalError | driver.InterfaceError)
        return StandbyDatabaseError(str(error).strip() or type(error).__name__, gone=gone)


class StandbyCycle:
    """A standby cycle's transaction (:meth:`StandbyStore.cycle`): the profile it read, and the record of an empty cycle."""

    def __init__(self, store: StandbyStore, run: _Run, profile: StandbyProfile | None) -> None:
        self._store = store
        self._run = run
        #: The profile's row as the cycle began (None: no such profile).
        self.profile = profile

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        """:meth:`StandbyStore.known_keys`, in this transaction (none asked for no keys)."""
        assert self.profile is not None
        return self._store._known_keys(self._run, self.profile.id, keys) if keys else set()

    def release_ok(self, worker: str, now: datetime, due: datetime) -> bool:
        """:meth:`StandbyStore.release_ok`, in this transaction."""
        assert self.profile is not None
        return self._store._release_ok(self._run, worker, self.profile.id, now, due)

    def hold(self, worker: str, now: datetime, lease: timedelta) -> bool:
        """:meth:`StandbyStore.hold`, in this transaction: after ``release_ok`` (which locked the row), as the
        engine holds a profile to watch in the transaction that gave its lease back (``hold_after_cycle``)."""
        assert self.profile is not None
        return self._store._hold(self._run, worker, self.profile.id, now, lease)


class _Run:
    """Runs a transaction's statements: ``run(sql, parameters)`` returns the rows (none for a plain UPDATE)."""

    def __init__(self, store: StandbyStore, cursor: Any) -> None:
        self.store = store
        self.cursor = cursor

    def __call__(
        self, sql: str, parameters: Mapping[str, Any], *, relaxed: bool = False
    ) -> list[tuple[Any, ...]]:
        values = dict(parameters)
        text = self.store._text(sql, values)
        self.cursor.execute(_RELAXED + text if relaxed else text, values)
        return list(self.cursor.fetchall()) if self.cursor.description is not None else []

    def rowcount(self) -> int:
        return int(self.cursor.rowcount)

    def close(self) -> None:
        self.cursor.close()


def _idle_enabled(document: str | None) -> bool:
    """``idle_switch.idle_enabled`` on the profile's newest properties document."""
    try:
        properties = json.loads(document or "{}")
    except ValueError:
        return True
    return not (isinstance(properties, dict) and properties.get(IDLE_KEY) is False)
