"""An IDLE renewal (DONE, then IDLE again) waits for the server's answer off the watcher's selector thread.

One worker watches two mailboxes on the real Dovecot and renews every IDLE each second. One of them is
reached through a proxy that then stalls: the renewal's DONE is held, so that renewal waits for an
answer until its 30 s timeout. The other mailbox's new mail must be stored meanwhile, before the
stalled renewal gives up, which the log's order shows (nothing is timed). The profiles poll hourly,
so the mail was announced by IDLE, not found by a poll.
"""

from __future__ import annotations

from postroom.core.app import Postroom
from tests.servers.dovecot import Dovecot
from tests.servers.tcp_proxy import TcpProxy
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.worker.workers import WorkerProcess, Workers, stored_counts, wait_until

HOUR = "3600"


def _watching(worker: WorkerProcess, name: str) -> None:
    """Wait until the worker waits in IDLE on ``name`` and has run the fetch that follows the connection."""
    match = worker.wait_for_log(rf"profile {name}: waiting for new mail \(IDLE\)", 60)
    wait_until(
        lambda: f"profile {name}: fetched " in worker.log()[match.end() :],
        60,
        f"the fetch cycle after {name}'s IDLE connection",
        worker.log,
    )


def test_a_server_that_stalls_an_idle_renewal_does_not_hold_up_another_mailboxs_new_mail(
    sqlite_url: str, sqlite_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    stalled_user, _ = dovecot.new_user("stalled")
    lively_user, _ = dovecot.new_user("lively")
    with TcpProxy((dovecot.host, dovecot.port_for("imap"))) as proxy:
        cli = Cli(sqlite_url)
        add_dovecot_profile(
            cli, dovecot, stalled_user, "imap", "--fetch-interval", HOUR, "--incoming-port", str(proxy.port),
            name="stalled",
        )  # fmt: skip
        add_dovecot_profile(cli, dovecot, lively_user, "imap", "--fetch-interval", HOUR, name="lively")
        Desk(sqlite_app).route("stalled")
        Desk(sqlite_app).route("lively")
        worker = workers.start("renewing", sqlite_url, "--verbose", "--idle-renew", "1")
        _watching(worker, "stalled")
        _watching(worker, "lively")

        proxy.stall()
        proxy.clear()
        # The only bytes a client sends on a connection in IDLE are a renewal's DONE (inside TLS).
        wait_until(proxy.sent, 60, "a renewal towards the stalled server", worker.log)

        dovecot.deliver(lively_user, numbered_mail(1, tag="lively"))

        try:
            wait_until(
                lambda: stored_counts(sqlite_app) == {"lively-1@example.org": 1},
                60,
                "the mail stored",
                worker.log,
            )
            stored = worker.wait_for_log(r"profile lively: fetched 1, stored 1")
            # The stalled renewal was still waiting for its answer when the other mail was stored.
            assert "profile stalled: the IDLE connection dropped" not in worker.log()[: stored.start()], (
                worker.log()
            )
        finally:
            proxy.resume()
