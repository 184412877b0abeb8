"""An empty cycle's two statements and the claim on the DBAPI cursor (PostgreSQL) do what Core does.

``core/data/driver_sql.py`` runs them on psycopg2's cursor to save Core's CPU; these tests hold it
to Core's results: the same row (bytes, not memoryview; times in UTC, aware), the same stored
times, and a database that went away raised as SQLAlchemy's error, which the outage handling knows.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from postroom.core.app import Postroom
from postroom.core.data.db import is_outage
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.driver_sql import DriverStatement
from postroom.core.data.models import MediaProfile
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.inbound.cycle_config import read_profile
from postroom.core.inbound.outcome import CycleEnd
from postroom.core.worker.leases import claim_on, release_after_cycle
from tests.support.profiles import empty_maildir_profile
from tests.support.statements import watched_statements

DELETED = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def _profile(app: Postroom, folder: Path) -> int:
    profile_id = empty_maildir_profile(app, folder, "cursor")
    with app.transaction() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        profile.password_encrypted = b"\x00secret\xff"
        profile.deleted_at = DELETED
        profile.lease_owner = "w1"
    return profile_id


def test_the_cursor_reads_the_row_core_reads(pg_app: Postroom, tmp_path: Path) -> None:
    profile_id = _profile(pg_app, tmp_path / "Maildir")
    with pg_app.sessions() as session:
        direct = read_profile(session, profile_id)
    with watched_statements(pg_app.engine) as seen, pg_app.sessions() as session:
        core = read_profile(session, profile_id)
    assert len(seen) == 1  # the listener saw Core's statement; the cursor's was not watched
    assert direct is not None and core is not None
    assert tuple(direct) == tuple(core)
    assert direct.name == "cursor" and direct.status == "ok" and direct.grant_id is None
    assert type(direct.password_encrypted) is bytes and direct.password_encrypted == b"\x00secret\xff"
    assert direct.deleted_at == DELETED and direct.deleted_at.tzinfo is not None


def test_the_cursor_releases_the_lease_and_stores_the_times_core_stores(pg_app: Postroom, tmp_path: Path) -> None:
    profile_id = _profile(pg_app, tmp_path / "Maildir")
    now = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
    end = CycleEnd(profile_id, "cursor", 30)
    end.values = {"status": "ok", "last_error": None, "consecutive_failures": 0, "last_fetch_at": now}
    with pg_app.transaction() as session:
        session.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))  # stored times must not depend on it
        due = release_after_cycle(session, "w1", end, now, now - timedelta(seconds=5))
    assert due == now + timedelta(seconds=25)
    with pg_app.sessions() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        assert (profile.lease_owner, profile.next_fetch_at, profile.last_fetch_at) == (None, due, now)
    # Another worker's lease is left alone: no row comes back, the outcome alone is written.
    with pg_app.transaction() as session:
        session.execute(update(MediaProfile).values(lease_owner="w2"))
    with pg_app.transaction() as session:
        assert release_after_cycle(session, "w1", end, now, now) is None
    with pg_app.sessions() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None and profile.lease_owner == "w2"


def test_a_database_gone_under_the_cursor_is_sqlalchemys_outage(pg_app: Postroom, tmp_path: Path) -> None:
    profile_id = _profile(pg_app, tmp_path / "Maildir")
    with pg_app.sessions() as session:
        backend = session.scalar(text("SELECT pg_backend_pid()"))  # the session holds this connection
        with pg_app.engine.begin() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        with pytest.raises(OperationalError) as raised:
            read_profile(session, profile_id)
        assert is_outage(raised.value)
        assert raised.value.connection_invalidated
    # The broken connection was not handed out again: the next cycle reads as before.
    with pg_app.sessions() as session:
        assert read_profile(session, profile_id) is not None


def test_the_cursor_claims_due_profiles_and_skips_held_ones(pg_app: Postroom, tmp_path: Path) -> None:
    profile_id = _profile(pg_app, tmp_path / "Maildir")  # deleted, and leased to w1: never claimed
    with pg_app.transaction() as session:
        for number in range(3):
            mailbox.Maildir(tmp_path / f"md{number}", create=True)
            create_profile(
                session,
                pg_app.plugins,
                DEFAULT_CONTACT_CENTER_ID,
                f"due{number}",
                ProfileFields(fetch_protocol="maildir", incoming_folder=str(tmp_path / f"md{number}")),
            )
    now = datetime.now(UTC)
    with pg_app.engine.begin() as connection:
        first = claim_on(connection, "w2", now, timedelta(seconds=60), 2)
    with watched_statements(pg_app.engine) as seen, pg_app.engine.begin() as connection:
        rest = claim_on(connection, "w3", now, timedelta(seconds=60), 5)
    assert len(seen) == 1
    assert len(first) == 2 and len(rest) == 1 and profile_id not in first + rest
    with pg_app.sessions() as session:
        owners = dict(session.execute(select(MediaProfile.id, MediaProfile.lease_owner)).all())
        expires = session.get(MediaProfile, first[0])
        assert expires is not None and expires.lease_expires_at is not None
        assert timedelta(seconds=59) < expires.lease_expires_at - now <= timedelta(seconds=60)
    assert owners == {profile_id: "w1", **dict.fromkeys(first, "w2"), **dict.fromkeys(rest, "w3")}


def test_a_statement_with_an_in_list_stays_on_core_and_answers(pg_app: Postroom, tmp_path: Path) -> None:
    """An ``IN`` list is rendered by Core's execution (``POSTCOMPILE``): the cursor path leaves such SQL to Core."""
    profile_id = _profile(pg_app, tmp_path / "Maildir")
    statement = DriverStatement(
        select(MediaProfile.id, MediaProfile.name).where(MediaProfile.status.in_(["ok", "error"]))
    )
    with pg_app.engine.begin() as connection:
        assert [tuple(row) for row in statement.all(connection, {})] == [(profile_id, "cursor")]
        assert statement.first(connection, {}).name == "cursor"
