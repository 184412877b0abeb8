"""The worker's standby (issue 18): an idle ``postroom run`` waits without the database stack and wakes for work.

Each test starts a real ``postroom run`` with a short ``--standby-after`` and follows the same process
(one pid throughout) through its forms: the engine stands by (its image replaced by
``python -m postroom.core.worker.standby``), the standby runs empty cycles itself and wakes the engine
for a new mail, a reply due or a changed configuration, and the engine stands by again. Memory is
bench/idle.py's business; here, that the standby's image imports no SQLAlchemy is checked in a fresh
interpreter, and that the process is that image by its command line.
"""

from __future__ import annotations

import mailbox
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import make_url, select

from postroom.core.app import Postroom
from postroom.core.data.models import MediaProfile
from postroom.core.outbound.compose import queue_reply
from postroom.core.worker.standby_switch import HANDOVER_ENV, Handover
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServers
from tests.servers.tcp_proxy import TcpProxy
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.support.profiles import empty_maildir_profile
from tests.worker.workers import WorkerProcess, Workers, stored_counts, wait_until

STANDING_BY = r"worker \S+ standing by: "
ENGINE_BACK = r"; the engine takes over"


def _form(worker: WorkerProcess) -> str:
    """Which program the worker's process runs now: its command line."""
    return Path(f"/proc/{worker.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _standing_by(worker: WorkerProcess, after: int = 0) -> None:
    """Wait until the worker stands by (for the ``after``-th time, counted from 0)."""
    wait_until(
        lambda: worker.log().count("standing by: ") > after,
        60,
        "the worker to stand by",
        worker.log,
    )
    wait_until(lambda: "postroom.core.worker.standby" in _form(worker), 30, "the standby's image", worker.log)


def _routed_maildir(app: Postroom, directory: Path) -> Path:
    """A routed maildir profile ``md`` polled every second, on an empty Maildir: the folder."""
    folder = directory / "inbox"
    empty_maildir_profile(app, folder, "md", fetch_interval=1)
    Desk(app).route("md")
    return folder


def test_the_standby_imports_no_sqlalchemy() -> None:
    """What the standby's process image loads: the modules it imports at start, in a fresh interpreter."""
    program = (
        "import sys, postroom.core.worker.standby\n"
        "import postroom.plugins.protocols.imap, postroom.plugins.protocols.pop3, postroom.plugins.protocols.maildir\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic', 'click')))"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_an_idle_worker_stands_by_runs_empty_cycles_and_wakes_the_engine_for_a_new_mail(
    sqlite_url: str, sqlite_app: Postroom, tmp_path: Path, workers: Workers
) -> None:
    folder = _routed_maildir(sqlite_app, tmp_path)
    worker = workers.start("md", sqlite_url, "--standby-after", "2", "--verbose")
    pid = worker.pid
    _standing_by(worker)
    # The standby's own empty cycles, on the profile's interval.
    worker.wait_for_log(r"profile md: nothing new \(standby\)(.|\n)*profile md: nothing new \(standby\)", 30)

    mailbox.Maildir(folder).add(numbered_mail(1, tag="standby"))

    worker.wait_for_log(r"profile md has 1 new mail\(s\)" + ENGINE_BACK, 30)
    wait_until(lambda: stored_counts(sqlite_app) == {"standby-1@example.org": 1}, 60, "the mail stored", worker.log)
    _standing_by(worker, after=1)  # and, idle again, back to standby
    assert worker.pid == pid and worker.process.poll() is None
    assert stored_counts(sqlite_app) == {"standby-1@example.org": 1}

    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert worker.log().rstrip().endswith("lease(s) given back)"), worker.log()
    with sqlite_app.sessions() as session:
        assert session.scalar(select(MediaProfile.lease_owner)) is None


def test_a_second_worker_on_the_sqlite_file_is_refused_while_the_first_stands_by(
    sqlite_url: str, sqlite_app: Postroom, tmp_path: Path, workers: Workers
) -> None:
    empty_maildir_profile(sqlite_app, tmp_path / "inbox", "md", fetch_interval=60)
    worker = workers.start("first", sqlite_url, "--standby-after", "1")
    _standing_by(worker)
    second = workers.start("second", sqlite_url)
    assert second.wait() != 0
    assert "Another postroom worker is already running" in second.log()


def test_a_changed_configuration_wakes_the_engine(
    pg_database_url: str, pg_app: Postroom, tmp_path: Path, workers: Workers
) -> None:
    empty_maildir_profile(pg_app, tmp_path / "inbox", "md", fetch_interval=3600)
    worker = workers.start("md", pg_database_url, "--standby-after", "1")
    _standing_by(worker)
    Cli(pg_database_url).ok("reload")
    worker.wait_for_log("the configuration changed" + ENGINE_BACK, 30)
    worker.wait_for_log(r"configuration generation \d+ picked up|configuration generation \d+ loaded", 30)
    _standing_by(worker, after=1)


def test_the_standby_waits_in_idle_and_the_engine_stores_what_it_announces(
    pg_database_url: str, pg_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("standby")
    add_dovecot_profile(Cli(pg_database_url), dovecot, user, "imap", "--fetch-interval", "3600", name="watched")
    Desk(pg_app).route("watched")
    worker = workers.start("watched", pg_database_url, "--standby-after", "2", "--verbose")
    _standing_by(worker)
    start = worker.log().rindex("standing by: ")
    wait_until(
        lambda: "profile watched: waiting for new mail (IDLE)" in worker.log()[start:],
        60,
        "the standby's IDLE connection",
        worker.log,
    )
    worker.wait_for_log(r"profile watched: nothing new \(standby\)", 30)  # the look after connecting

    dovecot.deliver(user, numbered_mail(1, tag="watched"))

    wait_until(lambda: stored_counts(pg_app) == {"watched-1@example.org": 1}, 60, "the mail stored", worker.log)
    assert "profile watched has 1 new mail(s)" in worker.log()
    _standing_by(worker, after=1)
    assert stored_counts(pg_app) == {"watched-1@example.org": 1}


def test_a_profile_only_the_engine_fetches_keeps_it_awake(
    sqlite_url: str, sqlite_app: Postroom, tmp_path: Path, workers: Workers
) -> None:
    """A protocol whose plugin does not wait in standby (the plugin guide's mbox, installed by the test
    command), due every second: the standby would wake the engine for it every cycle, so it stays awake."""
    empty_maildir_profile(sqlite_app, tmp_path / "inbox", "md", fetch_interval=60)
    mbox = tmp_path / "customers.mbox"
    mbox.write_bytes(b"")
    Cli(sqlite_url).ok(
        "profile", "add", "boxed", "--fetch-protocol", "mbox", "--incoming-folder", str(mbox), "--fetch-interval", "1"
    )
    worker = workers.start("md", sqlite_url, "--standby-after", "1", "--verbose")
    worker.wait_for_log(r"(profile boxed: fetched (.|\n)*){5}", 60)
    assert "standing by" not in worker.log()

    Cli(sqlite_url).ok("profile", "modify", "boxed", "--fetch-interval", "3600")
    _standing_by(worker)  # polled hourly now: no longer a reason to stay awake


def test_a_reply_queued_while_the_worker_stands_by_wakes_the_engine_which_sends_it(
    sqlite_url: str, sqlite_app: Postroom, smtp_servers: SmtpServers, workers: Workers
) -> None:
    desk = Desk(sqlite_app)
    profile_id = desk.smtp_profile("desk", smtp_servers.plain)
    ticket_id = desk.ticket(profile_id)
    worker = workers.start("desk", sqlite_url, "--standby-after", "1")
    _standing_by(worker)

    queue_reply(sqlite_app, 1, ticket_id, "Your parcel is on its way.")

    worker.wait_for_log("a reply is due" + ENGINE_BACK, 30)
    wait_until(lambda: smtp_servers.received("plain"), 30, "the reply sent", worker.log)
    assert len(smtp_servers.received("plain")) == 1
    _standing_by(worker, after=1)


def test_a_standby_that_cannot_start_hands_over_to_the_engine(tmp_path: Path) -> None:
    """The standby's own failure (here a database URL it cannot use) must not end the worker:
    it re-executes the process as the engine, told why (the engine here a stand-in that says so)."""
    engine = "import json, os; from postroom.core.worker.standby_switch import Handover; print('engine:', Handover.take().reason)"
    handover = Handover(
        worker="w:1:test",
        database_url="postgresql+pg8000://nobody@127.0.0.1/none",
        argv=["-c", engine],
        lease=60,
        threads=2,
        tick=0.5,
        idle_renew=1500,
        standby_after=300,
        verbose=False,
        log_format="text",
    )
    descriptor = handover.to_descriptor()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "postroom.core.worker.standby"],
            env={**os.environ, HANDOVER_ENV: str(descriptor)},
            pass_fds=(descriptor,),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(descriptor)
    assert "the standby failed; the engine takes over" in result.stderr
    assert result.stdout.strip() == "engine: the standby failed (ValueError)", result.stdout + result.stderr
    assert result.returncode == 0


def test_a_database_outage_in_standby_is_logged_once_and_the_mail_that_came_meanwhile_is_stored(
    pg_database_url: str, pg_app: Postroom, tmp_path: Path, workers: Workers
) -> None:
    folder = _routed_maildir(pg_app, tmp_path)
    url = make_url(pg_database_url)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        worker = workers.start("md", proxied, "--standby-after", "1")
        _standing_by(worker)
        lines_before = len(worker.log().splitlines())

        proxy.cut()
        time.sleep(8)  # the outage lasts; not a measurement
        mailbox.Maildir(folder).add(numbered_mail(1, tag="outage"))
        proxy.restore()

        wait_until(lambda: stored_counts(pg_app) == {"outage-1@example.org": 1}, 60, "the mail stored", worker.log)
        during = worker.log().splitlines()[lines_before:]
    assert "Traceback" not in "\n".join(during)
    failed = [line for line in during if re.search(r"standby: the database failed \(", line)]
    back = [line for line in during if "standby: the database answers again after" in line]
    assert len(failed) == 1 and len(back) == 1, "\n".join(during)


def test_a_standby_killed_with_sigkill_leaves_its_watched_mailbox_to_another_worker_within_the_lease(
    pg_database_url: str, pg_app: Postroom, dovecot: Dovecot, workers: Workers
) -> None:
    user, _ = dovecot.new_user("orphan")
    add_dovecot_profile(Cli(pg_database_url), dovecot, user, "imap", "--fetch-interval", "3600", name="orphan")
    Desk(pg_app).route("orphan")
    first = workers.start("first", pg_database_url, "--standby-after", "1", "--lease", "5")
    _standing_by(first)
    start = first.log().rindex("standing by: ")
    wait_until(lambda: "waiting for new mail (IDLE)" in first.log()[start:], 60, "the standby's IDLE", first.log)

    first.send_signal(signal.SIGKILL)
    first.wait()
    second = workers.start("second", pg_database_url, "--lease", "5")
    second.wait_for_log(r"profile orphan: waiting for new mail \(IDLE\)", 60)  # taken over, not at the hourly poll
    dovecot.deliver(user, numbered_mail(1, tag="orphan"))
    wait_until(lambda: stored_counts(pg_app) == {"orphan-1@example.org": 1}, 60, "the mail stored", second.log)
