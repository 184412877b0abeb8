"""A ``graph`` profile at the desk: fetch onto tickets, reply, throttling, delta rounds, against the Graph stand-in.

No Graph service can run here; the stand-in (tests/servers/graph_server.py) implements the
documented endpoints. Tokens come from ``tests.servers.graph_tokens`` registered as a plugin, as a
token provider (``postroom_get_access_token``) would give them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from postroom.core.app import Postroom
from postroom.core.data.models import Message, MessageRaw, ProtocolState, SendState
from postroom.core.inbound.fetch import Fetcher
from postroom.core.outbound.compose import queue_reply
from postroom.core.outbound.outbox import Outbox
from tests.inbound.mailboxes import ledger_size, stored_message_ids
from tests.outbox.helpers import NOW, failure_rows, outbox_rows
from tests.servers import graph_tokens
from tests.servers.graph_server import GraphStandIn
from tests.support.cli import Cli
from tests.support.desk import Desk
from tests.support.mail import numbered_mail


@pytest.fixture
def graph_app(database_url: str) -> Iterator[Postroom]:
    """The application with the test token provider as a plugin."""
    application = Postroom(database_url, extra_plugins=[("graph-test-token", graph_tokens)])
    try:
        yield application
    finally:
        application.dispose()


def graph_profile(app: Postroom, stand_in: GraphStandIn, user: str, **values: object) -> int:
    """Profile ``support``: fetch and send through Graph as ``user``, TLS verified against the test CA."""
    return Desk(app).profile(
        "support",
        fetch_protocol="graph",
        incoming_host=stand_in.base_url,
        send_protocol="graph",
        outgoing_host=stand_in.base_url,
        username=user,
        send_from_address=user,
        tls_verify=True,
        **values,
    )


def test_a_graph_profile_fetches_100_mails_onto_tickets_deletes_them_and_sends_a_reply_intact(
    graph_app: Postroom, graph_server: GraphStandIn, graph_user: str, database_url: str
) -> None:
    delivered = [numbered_mail(n) for n in range(100)]
    for raw in delivered:
        graph_server.deliver(graph_user, raw)
    profile_id = graph_profile(graph_app, graph_server, graph_user, delete_on_fetch=True)

    report = Fetcher(graph_app).fetch_profile(profile_id)

    assert (report.error, report.listed, report.stored, report.deleted) == (None, 100, 100, 100)
    assert stored_message_ids(database_url) == {f"mail-{n}@example.org": 1 for n in range(100)}
    assert graph_server.messages(graph_user) == [] and len(graph_server.deleted(graph_user)) == 100
    with graph_app.transaction() as session:
        tickets = session.scalars(
            select(Message.ticket_id).where(Message.message_id == "mail-42@example.org")
        )
        [ticket_id] = list(tickets)
        assert (
            session.scalar(select(func.count()).select_from(Message).where(Message.ticket_id.is_(None))) == 0
        )
    assert ticket_id is not None

    queued = queue_reply(graph_app, 1, ticket_id, "Your parcel left our warehouse today.", now=NOW)
    sent_report = Outbox(graph_app).send_due(NOW)

    assert (sent_report.sent, sent_report.copy_errors) == (1, 0)
    with graph_app.transaction() as session:
        row = outbox_rows(graph_app)[0]
        composed = session.scalar(select(MessageRaw.raw).where(MessageRaw.message_pk == row.message_pk))
    [sent] = graph_server.sent(graph_user)
    assert sent.raw == composed  # byte for byte what the composer built
    assert sent.recipients[0] == "customer42@example.org"  # to the customer (and whom the composer copied)
    assert f"<{queued.message_id}>".encode() in sent.raw
    assert [m.raw for m in graph_server.messages(graph_user, "sentitems")] == [composed]  # Graph's own copy


def test_a_second_cycle_asks_graph_only_for_what_is_new(
    graph_app: Postroom, graph_server: GraphStandIn, graph_user: str
) -> None:
    for n in range(30):
        graph_server.deliver(graph_user, numbered_mail(n))
    profile_id = graph_profile(graph_app, graph_server, graph_user)
    fetcher = Fetcher(graph_app)
    assert fetcher.fetch_profile(profile_id).stored == 30
    before = (graph_server.count(graph_user, "delta"), graph_server.count(graph_user, "value"))

    for n in range(30, 32):
        graph_server.deliver(graph_user, numbered_mail(n))
    second = Fetcher(graph_app).fetch_profile(profile_id)  # a new fetcher: the link comes from the database

    assert (second.listed, second.stored) == (2, 2)
    assert graph_server.count(graph_user, "delta") - before[0] == 1  # one request, straight to the changes
    assert graph_server.count(graph_user, "value") - before[1] == 2  # only the new mails downloaded
    assert Fetcher(graph_app).fetch_profile(profile_id).listed == 0
    with graph_app.transaction() as session:
        state = session.get(ProtocolState, (profile_id, "graph"))
        assert state is not None and "$deltatoken=" in state.state


def test_a_send_throttled_with_retry_after_120_is_retried_no_sooner_by_the_rate_limit_policy(
    graph_app: Postroom, graph_server: GraphStandIn, graph_user: str, postroom_cli: Cli
) -> None:
    profile_id = graph_profile(graph_app, graph_server, graph_user)
    # The policy alone would retry after 60 s; Graph asked for 120.
    postroom_cli.ok("profile", "retry", "support", "--rate-limit-retry-time", "60")
    ticket_id = Desk(graph_app).ticket(profile_id)
    queue_reply(graph_app, 1, ticket_id, "Thanks for waiting.", now=NOW)
    graph_server.fail("sendMail", 429, "TooManyRequests", retry_after="120")

    Outbox(graph_app).send_due(NOW)

    [row] = outbox_rows(graph_app)
    assert (row.state, row.category, row.policy) == (
        SendState.RETRY_SCHEDULED,
        "network routing error",
        "rate limit retry",
    )
    assert row.next_attempt_at == NOW + timedelta(seconds=120)
    [failure] = failure_rows(graph_app)
    assert (failure.reply_code, failure.enhanced_code, failure.next_attempt_at) == (
        429,
        "4.4.5",
        NOW + timedelta(seconds=120),
    )
    assert Outbox(graph_app).send_due(NOW + timedelta(seconds=119)).claimed == 0
    assert Outbox(graph_app).send_due(NOW + timedelta(seconds=120)).sent == 1
    assert len(graph_server.sent(graph_user)) == 1


def test_fetch_last_days_asks_graph_for_recent_mail_only(
    graph_app: Postroom, graph_server: GraphStandIn, graph_user: str, database_url: str
) -> None:
    now = datetime.now(UTC)
    graph_server.deliver(graph_user, numbered_mail(1), received=now - timedelta(days=10))
    graph_server.deliver(graph_user, numbered_mail(2), received=now - timedelta(hours=1))
    profile_id = graph_profile(graph_app, graph_server, graph_user, fetch_last_days=3)
    report = Fetcher(graph_app).fetch_profile(profile_id)
    assert (report.error, report.listed, report.stored) == (None, 1, 1)
    assert ledger_size(database_url) == 1
