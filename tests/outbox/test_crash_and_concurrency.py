"""At-least-once delivery: a sender killed mid-batch loses nothing; two senders never send a reply twice.

``postroom send`` runs as real processes here, against a real aiosmtpd that counts every mail it
accepts by Message-ID.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

from postroom.core.app import Postroom
from postroom.core.data.models import Message, MessageRaw, SendState, SMessageSendInfo, Ticket
from postroom.core.outbound import claims
from postroom.core.outbound.compose import compose_reply
from postroom.core.outbound.outbox import Outbox
from postroom.core.outbound.writer import OutcomeNotRecorded, unsynced_connection
from tests.outbox.helpers import NOW, outbox_rows
from tests.servers.smtp import free_port
from tests.support.cli import Cli, PostroomProcess
from tests.support.desk import Desk

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)


class CountingServer:
    """An aiosmtpd that takes ``delay`` seconds per mail and counts the Message-IDs it accepted."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.port = free_port()
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, ready_timeout=15.0)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        found = _MESSAGE_ID.search(bytes(envelope.original_content or b""))
        with self._lock:
            self._ids.append(found.group(1).decode() if found else "")
        return "250 2.0.0 OK"

    def received(self) -> Counter[str]:
        with self._lock:
            return Counter(self._ids)

    def reset(self, delay: float) -> None:
        with self._lock:
            self._ids.clear()
        self.delay = delay

    def start(self) -> None:
        self._controller.start()
        self.reset(0.0)

    def stop(self) -> None:
        self._controller.stop()


@pytest.fixture(scope="module")
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _queue(app: Postroom, desk: Desk, profile_id: int, count: int, tickets: int = 10) -> list[str]:
    """``count`` replies spread over a few tickets, composed through the compose service in one transaction."""
    ticket_ids = [desk.ticket(profile_id, subject=f"Question {n}") for n in range(tickets)]
    message_ids = []
    with app.transaction() as session:
        for number in range(count):
            ticket = session.get(Ticket, ticket_ids[number % tickets])
            assert ticket is not None
            reply = compose_reply(session, app.plugins, ticket, f"Answer {number}.", now=NOW)
            message_ids.append(reply.message_id)
    return message_ids


def _clone(app: Postroom, template: str, count: int) -> list[str]:
    """``count`` more queued replies like the composed one with Message-ID ``template``, bulk-inserted.

    Each copy is the composed mail with its own Message-ID, so the server can tell them apart.
    """
    with app.transaction() as session:
        row = session.scalar(select(SMessageSendInfo).where(SMessageSendInfo.message_id == template))
        assert row is not None
        message = session.get(Message, row.message_pk)
        raw = session.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == row.message_pk))
        assert message is not None and raw is not None
        columns = {
            c.key: getattr(message, c.key)
            for c in Message.__table__.columns
            if c.key not in ("id", "message_id", "text_body", "html_body")
        }
        message_ids = [template.replace("@", f".copy{n}@") for n in range(count)]
        pks = session.scalars(
            insert(Message).returning(Message.id, sort_by_parameter_order=True),
            [{**columns, "message_id": m} for m in message_ids],
        ).all()
        session.execute(
            insert(MessageRaw),
            [
                {"message_pk": pk, "raw": raw.replace(template.encode(), m.encode())}
                for pk, m in zip(pks, message_ids, strict=True)
            ],
        )
        session.execute(
            insert(SMessageSendInfo),
            [
                {
                    "message_pk": pk,
                    "ticket_id": row.ticket_id,
                    "media_profile_id": row.media_profile_id,
                    "message_id": m,
                    "envelope_from": row.envelope_from,
                    "pending_recipients": row.pending_recipients,
                    "state": SendState.QUEUED,
                    "attempts": 0,
                    "next_attempt_at": row.next_attempt_at,
                }
                for pk, m in zip(pks, message_ids, strict=True)
            ],
        )
    return message_ids


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_sender_killed_mid_batch_loses_nothing_once_its_lease_expires(
    app: Postroom, database_url: str, counting_server: CountingServer
) -> None:
    desk = Desk(app)
    profile_id = desk.profile(
        "support", send_protocol="smtp", outgoing_host="127.0.0.1", outgoing_port=counting_server.port
    )
    message_ids = _queue(app, desk, profile_id, 30, tickets=3)
    counting_server.reset(delay=0.1)

    sender = PostroomProcess(database_url, "send", "--now", NOW.isoformat())
    try:
        _wait_for(lambda: sum(counting_server.received().values()) >= 3, 60, "the first mails")
    finally:
        sender.send_signal(signal.SIGKILL)
        sender.communicate(timeout=30)
    assert sender.returncode == -signal.SIGKILL

    states = Counter(row.state for row in outbox_rows(app))
    assert states[SendState.SENDING] > 0, states  # claimed by the dead sender, not yet done
    delivered_before = set(counting_server.received())
    counting_server.reset(delay=0.0)

    # Within the lease nobody touches the dead sender's rows ...
    early = Cli(database_url).run_process("send", "--json", "--now", (NOW + timedelta(minutes=1)).isoformat())
    assert early.exit_code == 0, early.stderr
    assert json.loads(early.stdout)["claimed"] == 0
    # ... after it, they are sent.
    late = Cli(database_url).run_process("send", "--json", "--now", (NOW + timedelta(minutes=6)).isoformat())
    assert late.exit_code == 0, late.stderr
    assert json.loads(late.stdout)["sent"] == states[SendState.SENDING]

    assert {row.state for row in outbox_rows(app)} == {SendState.SENT}
    resent = counting_server.received()
    # Every reply reached the server at least once; only the one in flight at the kill may come twice.
    assert delivered_before | set(resent) == set(message_ids)
    assert len(delivered_before & set(resent)) <= 1 and set(resent.values()) == {1}


def test_two_senders_on_postgresql_send_each_of_1000_replies_exactly_once(
    pg_database_url: str, counting_server: CountingServer
) -> None:
    app = Postroom(pg_database_url)
    try:
        desk = Desk(app)
        profile_id = desk.profile(
            "support", send_protocol="smtp", outgoing_host="127.0.0.1", outgoing_port=counting_server.port
        )
        composed = _queue(app, desk, profile_id, 10)
        message_ids = composed + _clone(app, composed[0], 990)
        counting_server.reset(delay=0.001)

        senders = [
            PostroomProcess(pg_database_url, "send", "--json", "--batch-size", "20", "--now", NOW.isoformat())
            for _ in range(2)
        ]
        outputs = [sender.communicate(timeout=300) for sender in senders]
        for sender, (_stdout, stderr) in zip(senders, outputs, strict=True):
            assert sender.returncode == 0, stderr

        received = counting_server.received()
        assert set(received) == set(message_ids)
        assert set(received.values()) == {1}, [m for m, n in received.items() if n > 1][:5]
        reports = [json.loads(stdout) for stdout, _ in outputs]
        assert sum(r["sent"] for r in reports) == 1000
        assert all(r["sent"] > 0 for r in reports), reports  # both really took part
        with app.transaction() as session:
            states = dict(
                session.execute(
                    select(SMessageSendInfo.state, func.count()).group_by(SMessageSendInfo.state)
                ).all()
            )
        assert states == {SendState.SENT: 1000}
    finally:
        app.dispose()


def test_an_outcome_that_cannot_be_recorded_stops_the_run_before_the_next_mail_is_delivered(
    app: Postroom, counting_server: CountingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next mail's DATA waits for the previous outcome's commit; when that fails, it is not sent."""
    desk = Desk(app)
    profile_id = desk.profile(
        "support", send_protocol="smtp", outgoing_host="127.0.0.1", outgoing_port=counting_server.port
    )
    first, second = _queue(app, desk, profile_id, 2, tickets=1)
    counting_server.reset(delay=0.0)

    def database_gone(*_args: object) -> None:
        raise OperationalError("UPDATE s_message_send_info", {}, Exception("server closed the connection"))

    monkeypatch.setattr(claims, "write_transition", database_gone)
    with pytest.raises(OutcomeNotRecorded, match=r"outbox row \d+ failed .*server closed the connection"):
        Outbox(app).send_due(NOW)
    assert counting_server.received() == Counter([first])  # the second mail never got past DATA
    rows = outbox_rows(app)
    assert [(row.state, row.attempts) for row in rows] == [(SendState.QUEUED, 0)] * 2  # given back

    monkeypatch.undo()
    assert Outbox(app).send_due(NOW).sent == 2
    # The first mail's outcome was lost, so it went out twice: at least once, never lost.
    assert counting_server.received() == Counter([first, first, second])
    assert {row.state for row in outbox_rows(app)} == {SendState.SENT}


def test_the_outbox_connection_goes_back_to_the_pool_with_synchronous_commits_again(app: Postroom) -> None:
    postgresql = app.engine.dialect.name == "postgresql"
    setting = "SHOW synchronous_commit" if postgresql else "PRAGMA synchronous"
    with unsynced_connection(app.engine) as connection:
        relaxed = connection.exec_driver_sql(setting).scalar()
        first = connection.connection.dbapi_connection
    with app.engine.connect() as connection:
        strict = connection.exec_driver_sql(setting).scalar()
        assert connection.connection.dbapi_connection is first  # the very same pooled connection
        autocommit = postgresql and connection.connection.dbapi_connection.autocommit
    # SQLite: 1 is NORMAL, 2 is FULL. PostgreSQL's outbox connection also autocommits; others do not.
    assert (relaxed, strict) == (("off", "on") if postgresql else (1, 2))
    assert autocommit is False
