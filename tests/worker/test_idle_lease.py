"""IMAP IDLE follows the fetch lease: the worker that holds a profile's lease is the one that watches it.

Two ``postroom run`` workers on one PostgreSQL database and the real Dovecot. The first watches the
profile; it is then frozen (SIGSTOP) past its lease, and the second worker takes the lease over once
it has run out, although the profile's hourly poll is not due (a watched profile's worker that died
must not leave it unwatched until its next poll).
Once the first is thawed it must stop watching, and the second must be the one that watches and
stores the next mail. Nothing here is timed: every wait is generous and only its outcome is asserted.
"""

from __future__ import annotations

import json
import signal
import urllib.request

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile
from tests.servers.dovecot import Dovecot, free_ports
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.worker.workers import WorkerProcess, Workers, stored_counts, wait_until

LEASE = 5


def _health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        document: dict[str, object] = json.loads(response.read())
        return document


def _lease(app: Postroom, name: str) -> tuple[str | None, object]:
    with app.sessions() as session:
        owner, expires = session.execute(
            select(MediaProfile.lease_owner, MediaProfile.lease_expires_at).where(MediaProfile.name == name)
        ).one()
    return owner, expires


def _start(workers: Workers, name: str, url: str) -> tuple[WorkerProcess, int]:
    (port,) = free_ports(1)
    worker = workers.start(
        name, url, "--verbose", "--lease", str(LEASE), "--admin-listen", f"127.0.0.1:{port}"
    )
    worker.wait_started()
    return worker, port


def test_a_watched_profile_whose_lease_moves_to_another_worker_is_watched_there_and_no_longer_here(
    pg_database_url: str, pg_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("moving")
    add_dovecot_profile(
        Cli(pg_database_url), dovecot, user, "imap", "--fetch-interval", "3600", name="moving"
    )
    Desk(pg_app).route("moving")
    first, first_port = _start(workers, "first", pg_database_url)
    first.wait_for_log(r"profile moving: waiting for new mail \(IDLE\)", 60)
    first_id = _health(first_port)["worker"]
    assert _lease(pg_app, "moving")[0] == first_id
    second, second_port = _start(workers, "second", pg_database_url)
    second_id = _health(second_port)["worker"]
    assert _health(second_port)["idle_connections"] == 0

    first.send_signal(signal.SIGSTOP)
    try:
        # The frozen worker renews nothing: once its lease ran out, the second takes the profile
        # over, its hourly poll still far from due.
        second.wait_for_log(r"profile moving: waiting for new mail \(IDLE\)", 60)
        assert _lease(pg_app, "moving")[0] == second_id
    finally:
        first.send_signal(signal.SIGCONT)

    # The first worker lets go of the profile it no longer holds, and closes its IDLE connection.
    wait_until(
        lambda: _health(first_port)["idle_connections"] == 0,
        60,
        "the first worker to stop watching",
        first.log,
    )
    assert _health(second_port)["idle_connections"] == 1
    cycles_on_first = first.log().count("profile moving: fetched ")

    dovecot.deliver(user, numbered_mail(1, tag="moving"))

    wait_until(
        lambda: stored_counts(pg_app) == {"moving-1@example.org": 1}, 60, "the mail stored", second.log
    )
    second.wait_for_log(r"profile moving: fetched 1, stored 1")
    assert first.log().count("profile moving: fetched ") == cycles_on_first, first.log()
    assert _lease(pg_app, "moving")[0] == second_id
    assert _health(first_port)["idle_connections"] == 0
