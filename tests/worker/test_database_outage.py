"""A database outage under a running worker: logged once with a count, not once a second with a traceback.

The worker reaches the real PostgreSQL through a TCP proxy that the test cuts (every connection
breaks, new ones are refused) and restores.
"""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import OperationalError

from postroom.core.app import Postroom
from postroom.core.worker.outage import DatabaseOutage
from tests.servers.dovecot import Dovecot
from tests.servers.tcp_proxy import TcpProxy
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.worker.workers import Workers, stored_counts, wait_until

#: How long the database stays away: the scheduler, the outbox, the lease renewer and the fetches
#: (every second) each meet it several times.
OUTAGE_SECONDS = 12


def test_a_database_outage_is_logged_once_with_a_count_and_the_worker_fetches_again_afterwards(
    pg_database_url: str, pg_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("outage")
    add_dovecot_profile(Cli(pg_database_url), dovecot, user, "imap", "--fetch-interval", "1")
    Desk(pg_app).route("support")
    dovecot.deliver(user, numbered_mail(1))
    url = make_url(pg_database_url)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        worker = workers.start("outage", proxied)
        worker.wait_for_log(r"profile support: fetched 1, stored 1")
        lines_before = len(worker.log().splitlines())

        proxy.cut()
        time.sleep(OUTAGE_SECONDS)  # the outage lasts; not a measurement
        dovecot.deliver(user, numbered_mail(2))
        proxy.restore()

        wait_until(
            lambda: stored_counts(pg_app) == {"mail-1@example.org": 1, "mail-2@example.org": 1},
            30,
            "the mail delivered during the outage to be stored",
            worker.log,
        )
        log = worker.log()

    during = log.splitlines()[lines_before:]
    assert log.count("Traceback (most recent call last)") <= 1, log
    assert len(during) <= 12, "\n".join(during)
    unreachable = [line for line in during if "the database is unreachable" in line]
    assert len(unreachable) == 1 and unreachable[0].endswith("; retrying every 5 s")
    back = [line for line in during if "the database is reachable again" in line]
    assert len(back) == 1 and "failed tries over" in back[0]


def test_an_outage_logs_a_count_at_intervals_and_a_bug_is_left_to_the_caller(
    pg_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "postroom.worker")
    url = make_url(pg_database_url)
    outage = DatabaseOutage(logging.getLogger("postroom.worker"), retry_seconds=5, reminder_seconds=0)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        engine = create_engine(url.set(host="127.0.0.1", port=proxy.port))
        try:
            proxy.cut()
            for _ in range(3):
                with pytest.raises(OperationalError) as raised:
                    engine.connect()
                assert outage.failed(raised.value, "scheduler")
            assert outage.ongoing
            proxy.restore()
            with engine.connect():
                outage.succeeded()
        finally:
            engine.dispose()
    assert not outage.failed(ValueError("a bug"), "outbox")
    messages = [record.getMessage() for record in caplog.records]
    assert [m.split(" (")[0].split(", after")[0] for m in messages] == [
        "the database is unreachable",
        "the database is still unreachable after 2 failed tries over 0 s",
        "the database is still unreachable after 3 failed tries over 0 s",
        "the database is reachable again",
    ]
    assert "Traceback" not in caplog.text
