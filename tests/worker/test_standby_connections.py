"""The standby store's connections: what it opens, how it shares them, and a database that goes away.

A killed PostgreSQL backend is reported as gone and the next call works again; a refused statement
is not an outage; only release_ok's transaction commits without waiting for the disk; the standby's
threads share at most ``size`` connections; the URLs postroom takes open the same database, and
those the store cannot use are refused in a sentence.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg2
import pytest

from postroom.core.app import Postroom
from postroom.core.data import configuration
from postroom.core.worker.standby_store import StandbyDatabaseError, StandbyStore
from tests.support.standby import LEASE, NOW, STORES_BACKENDS, TAG, tagged
from tests.support.standby import standby_profile as _profile


def test_importing_the_store_loads_no_sqlalchemy() -> None:
    code = (
        "import sys, postroom.core.worker.standby_store;"
        "loaded = [m for m in sys.modules if m.startswith('sqlalchemy')];"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("ping_after", [float("inf"), 0.0])
def test_a_killed_postgresql_connection(pg_database_url: str, ping_after: float) -> None:
    """Without a ping the next statement fails as gone and the one after works; with one, none fails."""
    store = StandbyStore.open(tagged(pg_database_url), ping_after=ping_after)
    killer = psycopg2.connect(pg_database_url.replace("+psycopg2", ""))
    killer.autocommit = True
    try:
        assert store.generation() == 0
        with killer.cursor() as cursor:
            cursor.execute(f"SELECT pg_terminate_backend(pid) {STORES_BACKENDS}", [TAG])
            assert cursor.fetchall() == [(True,)]
        if ping_after > 0:
            with pytest.raises(StandbyDatabaseError) as raised:
                store.generation()
            assert raised.value.gone is True and "terminat" in str(raised.value)
        assert store.generation() == 0
    finally:
        store.close()
        killer.close()


def test_a_refused_statement_is_not_an_outage(pg_app: Postroom, pg_database_url: str, tmp_path: Path) -> None:
    profile_id = _profile(pg_app, tmp_path, "due")
    store = StandbyStore.open(pg_database_url)
    try:
        with pytest.raises(StandbyDatabaseError) as raised:
            store.hold("x" * 300, profile_id, NOW, LEASE)  # longer than lease_owner's VARCHAR(255)
        assert raised.value.gone is False and "too long" in str(raised.value)
        assert store.hold("me", profile_id, NOW, LEASE) is True
    finally:
        store.close()


def test_threads_share_at_most_size_connections(pg_database_url: str) -> None:
    store = StandbyStore.open(tagged(pg_database_url), size=2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                store.claim("me", NOW, LEASE, 1)
                store.release_all("me")
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        killer = psycopg2.connect(pg_database_url.replace("+psycopg2", ""))
        with killer.cursor() as cursor:
            cursor.execute(f"SELECT count(*) {STORES_BACKENDS}", [TAG])
            assert cursor.fetchone()[0] <= 2  # type: ignore[index]
        killer.close()
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://db/x",
        "postgresql+psycopg://u@h/db",
        "postgresql+pg8000://u@h/db",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_urls_it_cannot_use_are_refused_in_a_sentence(url: str) -> None:
    with pytest.raises(ValueError, match=r"^The standby worker .*\.$"):
        StandbyStore.open(url)


def test_it_opens_what_postroom_opens(database_url: str) -> None:
    store = StandbyStore.open(database_url)
    try:
        assert store.dialect == ("sqlite" if database_url.startswith("sqlite") else "postgresql")
        assert store.generation() == 0
    finally:
        store.close()


def test_a_relative_sqlite_path_is_the_file_postroom_opens(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///NAME`` is NAME in the working folder, percent-escapes decoded, as SQLAlchemy reads it."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(sqlite_template, tmp_path / "my data.sqlite")
    url = "sqlite:///my%20data.sqlite"
    app = Postroom(url)
    store = StandbyStore.open(url)
    try:
        with app.transaction() as session:
            configuration.reload_configuration(session)
        assert store.generation() == 1
    finally:
        store.close()
        app.dispose()


def test_release_ok_commits_without_waiting_for_the_disk_on_postgresql(
    pg_app: Postroom, pg_database_url: str, tmp_path: Path
) -> None:
    """``synchronous_commit`` is off in release_ok's transaction only (a trigger notes it per UPDATE)."""
    profile_id = _profile(pg_app, tmp_path, "noted")
    noting = [
        "CREATE TABLE standby_test_note (setting text)",
        "CREATE FUNCTION standby_test_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO standby_test_note VALUES (current_setting('synchronous_commit')); RETURN NEW; END $$",
        "CREATE TRIGGER standby_test_note AFTER UPDATE ON media_profile FOR EACH ROW EXECUTE FUNCTION standby_test_note()",
    ]
    with pg_app.engine.begin() as connection:
        for statement in noting:
            connection.exec_driver_sql(statement)
    store = StandbyStore.open(pg_database_url, size=1)
    try:
        assert store.claim("me", NOW, LEASE, 1) == [profile_id]
        assert store.release_ok("me", profile_id, NOW, NOW + LEASE) is True
        assert store.hold("me", profile_id, NOW, LEASE) is True  # the same connection, a new transaction
        with pg_app.engine.connect() as connection:
            notes = connection.exec_driver_sql("SELECT setting FROM standby_test_note").scalars().all()
        assert notes == ["on", "off", "on"]
    finally:
        store.close()
        with pg_app.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE standby_test_note")
            connection.exec_driver_sql("DROP FUNCTION standby_test_note() CASCADE")
