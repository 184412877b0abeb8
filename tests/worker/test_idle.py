"""IMAP IDLE under a running worker (``postroom run``) against the real Dovecot.

The profiles poll once an hour, so a mail stored within the test's (generous, untimed) wait was
announced by the server, not found by a poll. The worker reaches Dovecot through a TCP proxy that
the test cuts to drop the IDLE connection.
"""

from __future__ import annotations

import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from postroom.core.app import Postroom
from tests.servers.dovecot import Dovecot, free_ports
from tests.servers.tcp_proxy import TcpProxy
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.worker.workers import WorkerProcess, Workers, stored_counts, wait_until

HOUR = "3600"


def _cycles(worker: WorkerProcess, name: str) -> int:
    return worker.log().count(f"profile {name}: fetched ")


def _idle_and_quiet(worker: WorkerProcess, name: str, waiting: str) -> None:
    """Wait until the worker waits in IDLE and has run the fetch that follows each (re)connection."""
    match = worker.wait_for_log(rf"profile {name}: {waiting}", 60)
    wait_until(
        lambda: f"profile {name}: fetched " in worker.log()[match.end() :],
        60,
        "the fetch cycle after the IDLE connection",
        worker.log,
    )


def test_the_idle_switch_is_on_by_default_and_kept_by_profile_add_and_modify(sqlite_url: str) -> None:
    cli = Cli(sqlite_url)
    cli.ok("profile", "add", "on", "--fetch-protocol", "imap", "--incoming-host", "mail.example.test")
    cli.ok("profile", "add", "off", "--fetch-protocol", "imap", "--incoming-host", "mail.example.test", "--no-idle")
    assert cli.ok("profile", "show", "on", "--json").json()["idle"] is True
    assert cli.ok("profile", "show", "off", "--json").json()["idle"] is False
    cli.ok("profile", "modify", "off", "--idle")
    cli.ok("profile", "modify", "on", "--no-idle")
    assert cli.ok("profile", "show", "on", "--json").json()["idle"] is False
    assert cli.ok("profile", "show", "off", "--json").json()["idle"] is True


def test_a_mail_appended_to_an_idle_mailbox_is_stored_without_waiting_for_the_hourly_poll(
    sqlite_url: str, sqlite_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("idle")
    polled_user, _ = dovecot.new_user("polled")
    add_dovecot_profile(Cli(sqlite_url), dovecot, user, "imap", "--fetch-interval", HOUR, name="idle")
    add_dovecot_profile(
        Cli(sqlite_url), dovecot, polled_user, "imap", "--fetch-interval", HOUR, "--no-idle", name="polled"
    )
    Desk(sqlite_app).route("idle")
    worker = workers.start("idle", sqlite_url, "--verbose")
    _idle_and_quiet(worker, "idle", r"waiting for new mail \(IDLE\)")
    cycles_before = _cycles(worker, "idle")

    dovecot.deliver(user, numbered_mail(1, tag="idle"))

    wait_until(lambda: stored_counts(sqlite_app) == {"idle-1@example.org": 1}, 60, "the mail stored", worker.log)
    worker.wait_for_log(r"profile idle: fetched 1, stored 1")
    assert _cycles(worker, "idle") == cycles_before + 1, worker.log()
    # The profile switched off was fetched (its first poll) and is not watched.
    assert _cycles(worker, "polled") == 1, worker.log()
    assert "profile polled: waiting" not in worker.log()


def test_a_dropped_idle_connection_reconnects_and_the_next_mail_still_arrives_at_once(
    sqlite_url: str, sqlite_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("dropped")
    with TcpProxy((dovecot.host, dovecot.port_for("imap"))) as proxy:
        add_dovecot_profile(
            Cli(sqlite_url),
            dovecot,
            user,
            "imap",
            "--fetch-interval",
            HOUR,
            "--incoming-port",
            str(proxy.port),
            name="dropped",
        )
        Desk(sqlite_app).route("dropped")
        worker = workers.start("dropped", sqlite_url, "--verbose")
        _idle_and_quiet(worker, "dropped", r"waiting for new mail \(IDLE\)")

        proxy.cut()  # the IDLE connection breaks
        worker.wait_for_log(r"profile dropped: the IDLE connection dropped", 60)
        dovecot.deliver(user, numbered_mail(1, tag="dropped"))  # while no connection waits
        proxy.restore()
        _idle_and_quiet(worker, "dropped", r"IDLE connection restored")
        wait_until(
            lambda: stored_counts(sqlite_app) == {"dropped-1@example.org": 1}, 60, "mail 1 stored", worker.log
        )
        cycles_before = _cycles(worker, "dropped")

        dovecot.deliver(user, numbered_mail(2, tag="dropped"))

        wait_until(
            lambda: stored_counts(sqlite_app) == {"dropped-1@example.org": 1, "dropped-2@example.org": 1},
            60,
            "mail 2 stored",
            worker.log,
        )
        worker.wait_for_log(r"profile dropped: fetched 1, stored 1(.|\n)*profile dropped: fetched 1, stored 1")
        assert _cycles(worker, "dropped") == cycles_before + 1, worker.log()


def _health(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        document: dict[str, int] = json.loads(response.read())
        return document


def _idle_connections_metric(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    (value,) = (
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "postroom_idle_connections"
    )
    return value


def test_idle_is_renewed_before_the_server_limit_and_still_announces_mail_afterwards(
    sqlite_url: str, sqlite_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("renewed")
    add_dovecot_profile(Cli(sqlite_url), dovecot, user, "imaps", "--fetch-interval", HOUR, name="renewed")
    Desk(sqlite_app).route("renewed")
    (port,) = free_ports(1)
    worker = workers.start(
        "renewed",
        sqlite_url,
        "--verbose",
        "--idle-renew",
        "1",
        "--admin-listen",
        f"127.0.0.1:{port}",
        "--metrics-without-token",
    )
    _idle_and_quiet(worker, "renewed", r"waiting for new mail \(IDLE\)")
    assert _health(port)["idle_connections"] == 1
    assert _idle_connections_metric(port) == 1  # /metrics reads the same watcher
    wait_until(lambda: _health(port)["idle_renewals"] >= 3, 60, "three IDLE renewals", worker.log)
    cycles_before = _cycles(worker, "renewed")

    dovecot.deliver(user, numbered_mail(1, tag="renewed"))

    wait_until(
        lambda: stored_counts(sqlite_app) == {"renewed-1@example.org": 1}, 60, "the mail stored", worker.log
    )
    worker.wait_for_log(r"profile renewed: fetched 1, stored 1")  # stored is committed before it is logged
    assert _cycles(worker, "renewed") == cycles_before + 1, worker.log()
    assert "dropped" not in worker.log()
