"""Crash safety: ``postroom fetch`` killed with SIGKILL at random points never loses or doubles a mail.

Every run is a child process running the ``postroom fetch`` command with delete-on-fetch and
small batches, forked from the test so that two dozen runs do not each pay the interpreter's
start-up. It dies by SIGKILL at one of these points, chosen at random (fixed seed):

- right after a commit, before what follows it: after a batch's commit that is *between the commit
  and the delete on the server* (an SQLAlchemy ``after_commit`` listener kills its own process);
- in the middle of a batch, after some of its mails were downloaded (a ``message-fetched`` receiver);
- at a random moment chosen by the parent.

New mail arrives between runs. Then one clean cycle runs as a real ``python -m postroom fetch``
process, and every mail must be stored exactly once (by Message-ID) and gone from the server.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import signal
import time
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from postroom.cli import cli
from postroom.core.contract import events
from tests.inbound.mailboxes import ledger_size, stored_message_ids
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail

#: Runs that must end by SIGKILL (IMAP; POP3 has half). A timer that fires after the cycle ended
#: kills nothing, so there may be a few more runs than kills.
KILLS = 20
NEW_MAILS_PER_RUN = 4
KILL_POINTS = ["after-commit", "mid-batch", "timer"]


def fetch_until_killed(database_url: str, point: str, when: int) -> None:
    """The child: install the chosen kill point, then run ``postroom fetch`` as the command line does."""
    count = itertools.count(1)

    def die(*_args: Any, **_kwargs: Any) -> None:
        if next(count) == when:
            os.kill(os.getpid(), signal.SIGKILL)

    if point == "after-commit":
        event.listen(Session, "after_commit", die)
    elif point == "mid-batch":
        events.message_fetched.connect(die, weak=False)
    try:
        cli.main(["fetch", "--batch-size", "3", "--database-url", database_url], standalone_mode=False)
    finally:
        os._exit(0)


def run_and_kill(database_url: str, rng: random.Random) -> tuple[str, int | None]:
    """One run killed at a random point; returns the point and the child's exit code (-9: killed)."""
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


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_sigkill_at_random_points_then_a_clean_cycle_stores_every_mail_once_and_deletes_all(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, protocol: str
) -> None:
    rng = random.Random(f"crash-{protocol}")
    user, _ = dovecot.new_user(f"crash-{protocol}")
    delivered = [numbered_mail(n) for n in range(30)]
    dovecot.deliver_many(user, delivered)
    add_dovecot_profile(postroom_cli, dovecot, user, protocol, "--delete-on-fetch")
    outcomes: list[tuple[str, int | None]] = []
    caught_between_commit_and_delete = 0
    kills = KILLS if protocol == "imap" else KILLS // 2
    while sum(code == -signal.SIGKILL for _, code in outcomes) < kills and len(outcomes) < 3 * kills:
        new = [numbered_mail(n) for n in range(len(delivered), len(delivered) + NEW_MAILS_PER_RUN)]
        dovecot.deliver_many(user, new)
        delivered += new
        outcomes.append(run_and_kill(database_url, rng))
        stored = sum(stored_message_ids(database_url).values())
        # Mails both stored and still on the server: the kill fell between a commit and the delete.
        if stored + dovecot.count(user) > len(delivered):
            caught_between_commit_and_delete += 1

    final = postroom_cli.run_process("fetch")

    assert final.exit_code == 0, final.stderr
    assert stored_message_ids(database_url) == {f"mail-{n}@example.org": 1 for n in range(len(delivered))}
    assert ledger_size(database_url) == len(delivered)
    assert dovecot.count(user) == 0
    killed = [point for point, code in outcomes if code == -signal.SIGKILL]
    assert len(killed) >= kills, outcomes
    assert all(code in (0, -signal.SIGKILL) for _, code in outcomes), outcomes
    assert {"after-commit", "mid-batch"} <= set(killed)
    assert caught_between_commit_and_delete >= 1
