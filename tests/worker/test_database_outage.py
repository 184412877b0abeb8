"""A database outage under a running worker: logged once with a count, not once a second with a traceback.

The worker reaches the real PostgreSQL through a TCP proxy that the test cuts (every connection
breaks, new ones are refused) and restores.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import OperationalError

from postroom.core.app import Postroom
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.routing import InboundVerdict
from postroom.core.worker.outage import DatabaseOutage
from postroom.core.worker.scheduler import Worker
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
    # The outage's own line, once (a fetch in flight when the proxy was cut may add its profile's line,
    # "profile N: the database is unreachable (...)", as the in-flight test below expects).
    unreachable = [line for line in during if re.match(r"\S+ \S+ \w+ the database is unreachable \(", line)]
    assert len(unreachable) == 1 and unreachable[0].endswith("; retrying every 5 s"), "\n".join(during)
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


class _CuttingFilter:
    """An inbound filter that cuts the database proxy while its fetch is storing a batch, once: the
    database goes away with a fetch in flight, at a moment a test can choose."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.cut = threading.Event()

    @hookimpl
    def postroom_inbound_filter(self, message: Any, profile: Any) -> InboundVerdict | None:
        if not self.cut.is_set():
            self.cut.set()
            self.proxy.cut()
        return None


@pytest.mark.timeout(120)
def test_a_fetch_in_flight_when_the_database_goes_logs_the_outage_in_one_line_without_a_traceback(
    pg_database_url: str, pg_app: Postroom, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    user, _ = dovecot.new_user("inflight")
    add_dovecot_profile(Cli(pg_database_url), dovecot, user, "imap", "--fetch-interval", "1")
    Desk(pg_app).route("support")
    dovecot.deliver(user, numbered_mail(1))
    url = make_url(pg_database_url)
    caplog.set_level(logging.INFO, "postroom")
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        cutter = _CuttingFilter(proxy)
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = Postroom(proxied, extra_plugins=[("cutter", cutter)])
        # A short lease: the fetch that failed could not give its lease back, so it runs out first.
        worker = Worker(app, threads=1, tick=0.1, lease=timedelta(seconds=5))
        running = threading.Thread(target=worker.run, name="worker-under-test")
        running.start()
        try:
            wait_until(lambda: cutter.cut.is_set() and worker.outage.ongoing, 30, "the outage to begin")
            proxy.restore()
            wait_until(lambda: stored_counts(pg_app) == {"mail-1@example.org": 1}, 30, "the mail to be stored")
        finally:
            worker.stop()
            running.join(60)
            app.dispose()

    assert not running.is_alive()
    assert [r for r in caplog.records if r.exc_info] == [], caplog.text
    said = [r.getMessage() for r in caplog.records]
    # Whichever thread met the outage first (the fetch, the scheduler) said so, once.
    assert len([m for m in said if m.startswith("the database is unreachable (")]) == 1, caplog.text
    assert "profile 1: the database is unreachable" in caplog.text  # the fetch's own line, no traceback
