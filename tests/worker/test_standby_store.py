"""The standby's statements without SQLAlchemy do what the engine's SQLAlchemy statements do, on both databases.

Each test sets rows up with postroom's own API, runs the lean statement, and holds it against the
SQLAlchemy original on the same state: the same ids claimed, the same values written (read back
through the ORM, and on SQLite as the very text SQLAlchemy writes), the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.data import configuration
from postroom.core.data.idle_switch import KEY, idle_enabled, set_idle
from postroom.core.data.models import (
    FetchLedger,
    MediaProfile,
    MediaProfileConfiguration,
    OAuthGrant,
    ProfileStatus,
    SendState,
    SMessageSendInfo,
)
from postroom.core.data.profile_properties import profile_properties
from postroom.core.data.protocol_state import save_state
from postroom.core.inbound import cycle_config, fetch
from postroom.core.inbound.outcome import CycleEnd
from postroom.core.outbound.outbox import Outbox
from postroom.core.worker import leases
from postroom.core.worker.standby_store import (
    GENERATION,
    IDLE_KEY,
    LEDGER_LOOKUP_CHUNK,
    SEND_DUE_STATES,
    SEND_SENDING,
    STATUS_OK,
    StandbyStore,
)
from tests.outbox.helpers import NOW as REPLY_TIME
from tests.outbox.helpers import queue_customer_reply
from tests.servers.smtp import SmtpServers
from tests.support.desk import Desk
from tests.support.standby import LEASE, NOW, tagged
from tests.support.standby import standby_profile as _profile

T = TypeVar("T")


@pytest.fixture
def store(database_url: str) -> Iterator[StandbyStore]:
    opened = StandbyStore.open(tagged(database_url))
    try:
        yield opened
    finally:
        opened.close()


def _rolled_back(app: Postroom, work: Callable[[Connection], T]) -> T:
    """What ``work`` returns on a connection whose transaction is then rolled back (the state stays)."""
    with app.engine.connect() as connection:
        transaction = connection.begin()
        try:
            return work(connection)
        finally:
            transaction.rollback()


def _in_session(app: Postroom, work: Callable[[Session], T]) -> T:
    return _rolled_back(app, lambda connection: work(Session(bind=connection)))


def _row(app: Postroom, profile_id: int) -> MediaProfile:
    with app.sessions() as session:
        profile = session.get(MediaProfile, profile_id)
        assert profile is not None
        return profile


def _raw(app: Postroom, profile_id: int, *columns: str) -> tuple[Any, ...]:
    """Columns as the database holds them (SQLite: the text), not through the ORM's types."""
    with app.engine.connect() as connection:
        return tuple(
            connection.execute(
                text(f"SELECT {', '.join(columns)} FROM media_profile WHERE id = :id"), {"id": profile_id}
            ).one()
        )


def test_the_engines_values_it_copies_are_the_engines() -> None:
    assert STATUS_OK == ProfileStatus.OK
    assert GENERATION == configuration.GENERATION
    assert IDLE_KEY == KEY
    assert LEDGER_LOOKUP_CHUNK == fetch.LEDGER_LOOKUP_CHUNK
    assert set(SEND_DUE_STATES) == {SendState.QUEUED, SendState.RETRY_SCHEDULED}
    assert SEND_SENDING == SendState.SENDING
    from postroom.core.worker import standby_store

    assert standby_store.CONFIGURATION_COLUMNS == cycle_config.CONFIGURATION_COLUMNS


def test_it_claims_what_claim_on_claims(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    past, future = NOW - timedelta(minutes=5), NOW + timedelta(minutes=5)
    ids = {
        "never": _profile(app, tmp_path, "never"),  # next_fetch_at NULL: first
        "due": _profile(app, tmp_path, "due", next_fetch_at=past),
        "due-too": _profile(app, tmp_path, "due-too", next_fetch_at=past),  # same time: by id
        "now": _profile(app, tmp_path, "now", next_fetch_at=NOW),
        "later": _profile(app, tmp_path, "later", next_fetch_at=future),
        "held": _profile(
            app, tmp_path, "held", next_fetch_at=past, lease_owner="other", lease_expires_at=future
        ),
        "expired": _profile(
            app, tmp_path, "expired", next_fetch_at=future, lease_owner="dead", lease_expires_at=past
        ),
        "off": _profile(app, tmp_path, "off", incoming_allowed=False),
        "none": _profile(app, tmp_path, "none", fetch_protocol="none"),
        "deleted": _profile(app, tmp_path, "deleted", deleted_at=past),
    }
    before = {
        name: _raw(app, profile_id, "lease_owner", "lease_expires_at") for name, profile_id in ids.items()
    }
    for limit in (0, 1, 2, 3, 4, 5, 10):
        expected = _rolled_back(app, lambda c: leases.claim_on(c, "me", NOW, LEASE, limit))  # noqa: B023
        claimed = store.claim("me", NOW, LEASE, limit)
        assert claimed == expected
        for profile_id in claimed:
            row = _row(app, profile_id)
            assert (row.lease_owner, row.lease_expires_at) == ("me", NOW + LEASE)
        with app.transaction() as session:  # back to the state before, for the next limit
            for name, profile_id in ids.items():
                session.execute(
                    text("UPDATE media_profile SET lease_owner = :o, lease_expires_at = :e WHERE id = :id"),
                    {"o": before[name][0], "e": before[name][1], "id": profile_id},
                )
    everything = store.claim("me", NOW, LEASE, 10)
    assert everything == sorted(ids[n] for n in ("never", "due", "due-too", "now", "expired"))
    assert store.claim("me", NOW, LEASE, 10) == []  # all held now, by "me" (live) or "other"


def test_times_are_written_as_sqlalchemy_writes_them(
    app: Postroom, store: StandbyStore, tmp_path: Path
) -> None:
    """The same stored value (on SQLite the same text) for whole seconds, microseconds and other zones."""
    whole = NOW
    fine = datetime(2031, 3, 4, 10, 0, 0, 123456, tzinfo=UTC)
    zoned = datetime(2031, 3, 4, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    for index, due in enumerate((whole, fine, zoned)):
        lean = _profile(app, tmp_path, f"lean{index}")
        orm = _profile(app, tmp_path, f"orm{index}", next_fetch_at=due, last_fetch_at=NOW)
        assert store.claim("me", NOW, LEASE, 1) == [lean]
        assert store.release_ok("me", lean, NOW, due)
        assert _raw(app, lean, "next_fetch_at", "last_fetch_at") == _raw(
            app, orm, "next_fetch_at", "last_fetch_at"
        )
        assert _row(app, lean).next_fetch_at == due
        with app.transaction() as session:
            session.execute(
                text("UPDATE media_profile SET next_fetch_at = :d"), {"d": "9999-01-01 00:00:00.000000"}
            )
    if app.engine.dialect.name == "sqlite":
        assert _raw(app, lean, "last_fetch_at") == ("2031-03-04 10:00:00.000000",)


def test_it_reads_the_profile_as_the_cycle_does(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    plain = _profile(app, tmp_path, "plain")
    rich = _profile(
        app,
        tmp_path,
        "rich",
        username="u",
        status="error",
        consecutive_failures=3,
        fetch_last_days=7,
        delete_on_fetch=True,
        tls_verify=False,
        allow_plaintext_login=True,
        incoming_port=993,
    )
    gone = _profile(app, tmp_path, "gone", deleted_at=NOW, incoming_allowed=False)
    with app.transaction() as session:
        session.get(MediaProfile, rich).password_encrypted = b"gAAAA-token"  # type: ignore[union-attr]
        save_state(session, rich, "maildir", "cursor-7")
        save_state(session, rich, "imap", "not this protocol's")
        session.add(OAuthGrant(media_profile_id=rich, provider="microsoft", flow="client-credentials"))
    for profile_id in (plain, rich, gone):
        expected = _in_session(app, lambda s: cycle_config.read_profile(s, profile_id))  # noqa: B023
        lean = store.read_profile(profile_id)
        assert expected is not None and lean is not None
        columns = {name: value for name, value in expected._asdict().items() if name != "relaxed"}
        assert {name: getattr(lean, name) for name in columns} == columns
        assert lean.idle is True
        assert lean.can_fetch == _row(app, profile_id).can_fetch
    lean = store.read_profile(rich)
    assert lean is not None and lean.sync_state == "cursor-7" and lean.grant_id is not None
    assert lean.password_encrypted == b"gAAAA-token" and lean.deleted_at is None
    assert store.read_profile(gone).deleted_at == NOW  # type: ignore[union-attr]
    assert store.read_profile(rich + gone + 100) is None


def test_it_reads_the_idle_switch_as_idle_enabled(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    profile_id = _profile(app, tmp_path, "watched")
    documents = [
        '{"idle": false}',
        '{"idle": true}',
        "not json",
        '["idle"]',
        '{"idle": "no"}',
        "",
        '{"x": 1}',
    ]
    for document in documents:
        with app.transaction() as session:
            profile = session.get(MediaProfile, profile_id)
            assert profile is not None
            row, _properties = profile_properties(session, profile)
            row.media_profile_properties = document
        expected = _in_session(app, lambda s: idle_enabled(s, profile_id))
        assert store.read_profile(profile_id).idle is expected, document  # type: ignore[union-attr]
    with app.transaction() as session:  # the newest row counts (the older one says on)
        session.add(
            MediaProfileConfiguration(
                media_profile_id=profile_id,
                contact_center_id=1,
                media_profile_properties=json.dumps({"idle": False}),
            )
        )
    assert _in_session(app, lambda s: idle_enabled(s, profile_id)) is False
    assert store.read_profile(profile_id).idle is False  # type: ignore[union-attr]
    with app.transaction() as session:
        set_idle(session, session.get(MediaProfile, profile_id), True)  # type: ignore[arg-type]
    assert _in_session(app, lambda s: idle_enabled(s, profile_id)) is True
    assert store.read_profile(profile_id).idle is True  # type: ignore[union-attr]


def test_it_knows_the_ledgers_keys(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    mine, other = _profile(app, tmp_path, "mine"), _profile(app, tmp_path, "other")
    stored = [f"key-{n}" for n in range(0, 1200, 2)]
    with app.transaction() as session:
        for n, key in enumerate(stored):
            session.add(
                FetchLedger(
                    media_profile_id=mine, mailbox_key=key, outcome="stored" if n % 3 else "quarantined"
                )
            )
        session.add(FetchLedger(media_profile_id=other, mailbox_key="key-1", outcome="stored"))
    listed = [f"key-{n}" for n in range(1200)]  # three chunks
    expected = _in_session(app, lambda s: set(fetch._known_keys(s, mine, listed)))
    assert store.known_keys(mine, listed) == expected == set(stored)
    assert store.known_keys(mine, []) == set()
    assert store.known_keys(other, ["key-1", "key-2"]) == {"key-1"}


def test_release_ok_writes_what_release_after_cycle_writes(
    app: Postroom, store: StandbyStore, tmp_path: Path
) -> None:
    failing = {"status": "error", "last_error": "down", "consecutive_failures": 3, "next_fetch_at": NOW}
    lean, core = _profile(app, tmp_path, "lean", **failing), _profile(app, tmp_path, "core", **failing)
    assert store.claim("me", NOW, LEASE, 2) == [lean, core]
    due = NOW + timedelta(seconds=30)
    assert store.release_ok("me", lean, NOW, due) is True
    end = CycleEnd(
        core,
        "core",
        30,
        {"status": "ok", "last_error": None, "consecutive_failures": 0, "last_fetch_at": NOW},
    )
    with app.transaction() as session:
        assert leases.release_after_cycle(session, "me", end, NOW, NOW) == due
    columns = (
        "status",
        "last_error",
        "consecutive_failures",
        "last_fetch_at",
        "next_fetch_at",
        "lease_owner",
        "lease_expires_at",
    )
    assert _raw(app, lean, *columns) == _raw(app, core, *columns)
    row = _row(app, lean)
    assert (row.status, row.last_error, row.consecutive_failures) == (ProfileStatus.OK, None, 0)
    assert (row.last_fetch_at, row.next_fetch_at, row.lease_owner, row.lease_expires_at) == (
        NOW,
        due,
        None,
        None,
    )
    # The engine's claim sees the next fetch: not before it, at it.
    assert (
        _rolled_back(app, lambda c: leases.claim_on(c, "w", due - timedelta(microseconds=1), LEASE, 5)) == []
    )
    assert _rolled_back(app, lambda c: leases.claim_on(c, "w", due, LEASE, 5)) == [lean, core]
    assert store.claim("w", due - timedelta(microseconds=1), LEASE, 5) == []


def test_release_ok_without_the_lease_writes_the_outcome_alone(
    app: Postroom, store: StandbyStore, tmp_path: Path
) -> None:
    planned = NOW + timedelta(hours=1)
    taken = _profile(
        app,
        tmp_path,
        "taken",
        status="error",
        last_error="x",
        consecutive_failures=2,
        next_fetch_at=planned,
        lease_owner="other",
        lease_expires_at=planned,
    )
    assert store.release_ok("me", taken, NOW, NOW + timedelta(seconds=30)) is False
    row = _row(app, taken)
    assert (row.status, row.last_error, row.consecutive_failures, row.last_fetch_at) == ("ok", None, 0, NOW)
    assert (row.lease_owner, row.lease_expires_at, row.next_fetch_at) == ("other", planned, planned)


def test_hold_takes_a_free_lease_only(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    free, taken = _profile(app, tmp_path, "free"), _profile(app, tmp_path, "taken", lease_owner="other")
    assert store.hold("me", free, NOW, LEASE) is True
    assert (_row(app, free).lease_owner, _row(app, free).lease_expires_at) == ("me", NOW + LEASE)
    assert store.hold("me", free, NOW, LEASE) is False  # held now, if by "me"
    assert store.hold("me", taken, NOW, LEASE) is False
    assert (_row(app, taken).lease_owner, _row(app, taken).lease_expires_at) == ("other", None)


def test_renew_extends_what_renew_leases_extends(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    mine = [_profile(app, tmp_path, f"mine{n}", lease_owner="me", lease_expires_at=NOW) for n in range(3)]
    theirs = _profile(app, tmp_path, "theirs", lease_owner="other", lease_expires_at=NOW)
    free = _profile(app, tmp_path, "free")
    asked = [*mine, theirs, free]
    later = NOW + timedelta(minutes=1)
    expected = _in_session(app, lambda s: leases.renew_leases(s, "me", asked, later, LEASE))
    assert store.renew("me", asked, later, LEASE) == expected == set(mine)
    assert store.renew("me", [], later, LEASE) == set()
    assert {_row(app, p).lease_expires_at for p in mine} == {later + LEASE}
    assert _row(app, theirs).lease_expires_at == NOW and _row(app, free).lease_expires_at is None


def test_let_go_gives_back_this_workers_leases(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    planned = NOW + timedelta(hours=1)
    kept, due_now = (
        _profile(app, tmp_path, n, lease_owner="me", lease_expires_at=planned, next_fetch_at=planned)
        for n in ("kept", "due")
    )
    theirs = _profile(app, tmp_path, "theirs", lease_owner="other", next_fetch_at=planned)
    assert store.let_go("me", [kept, theirs]) == 1
    assert (_row(app, kept).lease_owner, _row(app, kept).lease_expires_at, _row(app, kept).next_fetch_at) == (
        None,
        None,
        planned,
    )
    assert store.let_go("me", [due_now, theirs], due=NOW) == 1
    row = _row(app, due_now)
    assert (row.lease_owner, row.lease_expires_at, row.next_fetch_at) == (None, None, NOW)
    assert (_row(app, theirs).lease_owner, _row(app, theirs).next_fetch_at) == ("other", planned)
    assert store.let_go("me", []) == 0
    assert _rolled_back(app, lambda c: leases.claim_on(c, "w", NOW, LEASE, 5)) == [due_now]


def test_adopt_renews_every_lease_of_this_worker_as_adopt_leases_does(
    app: Postroom, store: StandbyStore, tmp_path: Path
) -> None:
    planned = NOW + timedelta(hours=1)
    held = _profile(app, tmp_path, "held", lease_owner="me", lease_expires_at=NOW, next_fetch_at=planned)
    never = _profile(app, tmp_path, "never", lease_owner="me", lease_expires_at=NOW)
    theirs = _profile(app, tmp_path, "theirs", lease_owner="other", lease_expires_at=NOW)
    later = NOW + timedelta(minutes=1)
    expected = _in_session(app, lambda s: leases.adopt_leases(s, "me", later, LEASE))
    assert store.adopt("me", later, LEASE) == expected == {held: planned, never: None}
    assert {_row(app, p).lease_expires_at for p in (held, never)} == {later + LEASE}
    assert _row(app, theirs).lease_expires_at == NOW
    assert store.adopt("nobody", later, LEASE) == {}


def test_disabled_plugins_are_those_the_app_reads_as_switched_off(app: Postroom, store: StandbyStore) -> None:
    assert store.disabled_plugins() == app.disabled_plugin_names() == set()
    app.set_plugin_enabled("signal-audit", False)
    assert store.disabled_plugins() == app.disabled_plugin_names() == {"signal-audit"}
    app.set_plugin_enabled("signal-audit", True)
    assert store.disabled_plugins() == app.disabled_plugin_names() == set()


def test_release_all_is_release_all(app: Postroom, store: StandbyStore, tmp_path: Path) -> None:
    mine = [_profile(app, tmp_path, f"mine{n}", lease_owner="me", lease_expires_at=NOW) for n in range(2)]
    theirs = _profile(app, tmp_path, "theirs", lease_owner="other", lease_expires_at=NOW)
    assert _in_session(app, lambda s: leases.release_all(s, "me")) == 2
    assert store.release_all("me") == 2
    assert [_row(app, p).lease_owner for p in [*mine, theirs]] == [None, None, "other"]
    assert store.release_all("me") == 0


def test_the_generation_is_config_generation(app: Postroom, store: StandbyStore) -> None:
    for _ in range(3):
        assert store.generation() == _in_session(app, configuration.config_generation)
        with app.transaction() as session:
            configuration.reload_configuration(session)
    assert store.generation() == 3


def test_anything_due_answers_as_the_outbox_does(
    app: Postroom, store: StandbyStore, smtp_servers: SmtpServers
) -> None:
    desk = Desk(app)
    outbox = Outbox(app)
    times = (REPLY_TIME - timedelta(days=1), REPLY_TIME, REPLY_TIME + timedelta(days=1))
    assert [store.anything_due(t) for t in times] == [outbox.anything_due(t) for t in times] == [False] * 3
    send_info_id = queue_customer_reply(desk, desk.smtp_profile("support", smtp_servers.plain))
    states = [
        {},  # as queued
        {"state": SendState.RETRY_SCHEDULED, "next_attempt_at": REPLY_TIME},
        {"state": SendState.QUEUED, "next_attempt_at": None},
        {"state": SendState.SENDING, "claim_expires_at": REPLY_TIME},
        {"state": SendState.SENT},
        {"state": SendState.FAILED, "next_attempt_at": None},
    ]
    answers = []
    for values in states:
        with app.transaction() as session:
            row = session.get(SMessageSendInfo, send_info_id)
            assert row is not None
            for column, value in values.items():
                setattr(row, column, value)
        answers.append([store.anything_due(t) for t in times])
        assert answers[-1] == [outbox.anything_due(t) for t in times], values
    assert answers[3] == [False, True, True] and answers[4] == [False] * 3
