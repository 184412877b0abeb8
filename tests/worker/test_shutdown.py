"""Stopping the worker: SIGTERM in the middle of a cycle loses and doubles nothing; on SQLite a second
worker is refused while the first runs.
"""

from __future__ import annotations

import re
import signal

from postroom.core.app import Postroom
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import free_port
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.worker.workers import Workers, ledger_outcomes, stored_counts, wait_until

MAILS = 300


def test_sigterm_during_a_cycle_exits_0_and_the_next_start_stores_the_rest_exactly_once(
    sqlite_url: str, sqlite_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("big")
    dovecot.deliver_many(user, [numbered_mail(n, tag="big") for n in range(MAILS)])
    add_dovecot_profile(
        # No IDLE: the test counts the leases of cycles in flight, not one the worker holds to watch.
        Cli(sqlite_url), dovecot, user, "imap", "--fetch-interval", "1", "--delete-on-fetch", "--no-idle", name="big"
    )
    Desk(sqlite_app).route("big")
    expected = {f"big-{n}@example.org" for n in range(MAILS)}

    first = workers.start("first", sqlite_url, "--batch-size", "1", "--verbose")
    wait_until(lambda: sum(stored_counts(sqlite_app).values()) >= 20, 30, "the first batches", first.log)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, first.log()

    # It stopped within the cycle, after the mail in hand, with every stored mail gone from the server.
    stored = stored_counts(sqlite_app)
    assert 20 <= sum(stored.values()) < MAILS
    assert set(stored.values()) == {1}
    assert dovecot.count(user) == MAILS - len(stored)
    assert re.search(r"stopping: finishing 1 fetch\(es\) in progress", first.log())
    [cycle] = first.cycles()
    assert cycle.stored == len(stored)
    assert re.search(r"stopped \(0 lease\(s\) given back\)", first.log())

    second = workers.start("second", sqlite_url, "--verbose")
    wait_until(lambda: set(stored_counts(sqlite_app)) == expected, 60, "all mails stored", second.log)
    wait_until(lambda: dovecot.count(user) == 0, 10, "the mailbox to be emptied", second.log)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0, second.log()

    assert stored_counts(sqlite_app) == dict.fromkeys(expected, 1)
    assert ledger_outcomes(sqlite_app) == {"stored": MAILS}
    # (The broken plugins ./run-tests installs are told as a warning each: that is not this test's business.)
    assert not re.search(r"Traceback|ERROR|WARNING(?! plugin \S+ is left out: )", first.log() + second.log())


def test_a_second_worker_on_the_same_sqlite_file_says_so_and_exits_non_zero(
    sqlite_url: str, workers: Workers
) -> None:
    port = str(free_port())
    first = workers.start("first", sqlite_url, "--admin-listen", port)
    first.wait_started()

    # Even asked for the same admin port, it names the real obstacle: the other worker.
    second = workers.start("second", sqlite_url, "--admin-listen", port)

    assert second.wait(30) == 1
    [line] = second.log().strip().splitlines()
    assert line.startswith("Error: Another postroom worker is already running on the SQLite database ")
    assert "use PostgreSQL to run several" in line
    assert first.process.poll() is None
    first.send_signal(signal.SIGINT)
    assert first.wait(30) == 0, first.log()
