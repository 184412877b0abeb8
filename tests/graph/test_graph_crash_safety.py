"""Crash safety of a ``graph`` fetch with delete-on-fetch: SIGKILL at 20 random points loses and doubles nothing.

Like tests/inbound/test_crash_safety.py for IMAP and POP3: each run is a child forked from the test,
fetching with batches of 3, killed by SIGKILL at a point chosen at random (fixed seed): right after
a commit (between a batch's commit and its deletes at Graph, or between the last deletes and the
saving of the delta link), in the middle of a batch (after some mails were downloaded), or at a
random moment. The Graph stand-in runs in this process, so the mailbox outlives every killed run.
New mail arrives between runs; a final clean cycle must leave every mail stored exactly once and
none at Graph.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import signal
import time
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.data.models import MediaProfile
from postroom.core.inbound.fetch import Fetcher
from tests.graph.test_graph_desk import graph_profile
from tests.inbound.mailboxes import ledger_size, stored_message_ids
from tests.servers import graph_tokens
from tests.servers.graph_server import GraphStandIn
from tests.support.mail import numbered_mail

KILLS = 20
NEW_MAILS_PER_RUN = 4
KILL_POINTS = ["after-commit", "mid-batch", "timer"]


def _fetch(database_url: str) -> None:
    app = Postroom(database_url, extra_plugins=[("graph-test-token", graph_tokens)])
    with app.sessions() as session:
        profile_id = session.scalars(select(MediaProfile.id).where(MediaProfile.name == "support")).one()
    report = Fetcher(app, batch_mails=3).fetch_profile(profile_id)
    assert report.error is None, report.error


def fetch_until_killed(database_url: str, point: str, when: int) -> None:
    """The child: install the chosen kill point, then run one fetch cycle of profile ``support``."""
    count = itertools.count(1)

    def die(*_args: Any, **_kwargs: Any) -> None:
        if next(count) == when:
            os.kill(os.getpid(), signal.SIGKILL)

    if point == "after-commit":
        event.listen(Session, "after_commit", die)
    elif point == "mid-batch":
        events.message_fetched.connect(die, weak=False)
    try:
        _fetch(database_url)
    finally:
        os._exit(0)


def run_and_kill(database_url: str, rng: random.Random) -> tuple[str, int | None]:
    point = rng.choice(KILL_POINTS)
    when = rng.randint(2, 9) if point == "after-commit" else rng.randint(1, 12)
    child = multiprocessing.get_context("fork").Process(
        target=fetch_until_killed, args=(database_url, point, when)
    )
    child.start()
    if point == "timer":
        time.sleep(rng.uniform(0.02, 0.35))
        if child.is_alive():
            os.kill(child.pid or 0, signal.SIGKILL)
    child.join(timeout=60)
    return point, child.exitcode


def test_sigkill_at_random_points_of_a_graph_fetch_then_a_clean_cycle_stores_every_mail_once(
    database_url: str, graph_server: GraphStandIn, graph_user: str
) -> None:
    rng = random.Random("crash-graph")
    delivered = [numbered_mail(n) for n in range(30)]
    for raw in delivered:
        graph_server.deliver(graph_user, raw)
    app = Postroom(database_url)
    graph_profile(app, graph_server, graph_user, delete_on_fetch=True)
    app.dispose()
    outcomes: list[tuple[str, int | None]] = []
    caught_between_commit_and_delete = 0
    while sum(code == -signal.SIGKILL for _, code in outcomes) < KILLS and len(outcomes) < 3 * KILLS:
        new = [numbered_mail(n) for n in range(len(delivered), len(delivered) + NEW_MAILS_PER_RUN)]
        for raw in new:
            graph_server.deliver(graph_user, raw)
        delivered += new
        outcomes.append(run_and_kill(database_url, rng))
        stored = sum(stored_message_ids(database_url).values())
        if stored + len(graph_server.messages(graph_user)) > len(delivered):
            caught_between_commit_and_delete += 1

    _fetch(database_url)  # the clean cycle

    assert stored_message_ids(database_url) == {f"mail-{n}@example.org": 1 for n in range(len(delivered))}
    assert ledger_size(database_url) == len(delivered)
    assert graph_server.messages(graph_user) == []
    assert len(set(graph_server.deleted(graph_user))) == len(delivered)
    killed = [point for point, code in outcomes if code == -signal.SIGKILL]
    assert len(killed) >= KILLS, outcomes
    assert all(code in (0, -signal.SIGKILL) for _, code in outcomes), outcomes
    assert {"after-commit", "mid-batch"} <= set(killed)
    assert caught_between_commit_and_delete >= 1
