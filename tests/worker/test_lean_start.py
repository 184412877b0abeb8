"""An idle worker imports what waiting needs, not what a mail, a scrape or another command needs (issue 18).

Each library below holds between a few hundred KiB and 7 MiB of a process that mostly waits; the
worker imports it on first use. Checked in a fresh ``postroom run`` process (as a user starts it,
plugins installed) after its first fetch cycle, by what its ``sys.modules`` holds: not by a memory
figure, which bench/idle.py measures.
"""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
from pathlib import Path

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.profiles import ProfileFields, create_profile

#: Imported on first use only: the password cipher (no stored password here), the HTML sanitiser
#: (composing, signatures), the bounce detectors (a mail that looks like a bounce), the metrics
#: library (the admin endpoint), the EWS, Graph and OAuth2 clients, the migrations (``init``), the
#: demo, and the web stack (``postroom web``, which the worker never imports at all).
NOT_AT_START = (
    "cryptography",
    "nh3",
    "flufl.bounce",
    "prometheus_client",
    "postroom.core.worker.prometheus_metrics",
    "exchangelib",
    "requests",
    "msal",
    "google.auth",
    "alembic",
    "postroom.demo",
    "postroom.web",
    "flask",
    "waitress",
)

#: Runs ``postroom run`` in this process; a thread waits for the first cycle's record in the
#: database, prints the modules loaded by then, and stops the worker as SIGTERM does.
_RUN = """
import json, os, signal, sqlite3, sys, threading, time

def report_after_first_cycle(path):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(path) as db:
            if db.execute("SELECT last_fetch_at FROM media_profile").fetchone()[0] is not None:
                break
        time.sleep(0.1)
    time.sleep(0.5)  # the cycle's own commit and lease release are over
    print(json.dumps(sorted(sys.modules)), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=report_after_first_cycle, args=(sys.argv[2],), daemon=True).start()
sys.argv = ["postroom", "--database-url", sys.argv[1], "run"]
from postroom.console import main
main()
"""


def test_an_idle_worker_has_not_imported_what_only_mail_a_scrape_or_another_command_needs(
    sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "Maildir"
    mailbox.Maildir(folder, create=True)
    app = Postroom(sqlite_url)
    try:
        with app.transaction() as session:
            create_profile(
                session,
                app.plugins,
                DEFAULT_CONTACT_CENTER_ID,
                "empty",
                ProfileFields(fetch_protocol="maildir", incoming_folder=str(folder), fetch_interval=3600),
            )
    finally:
        app.dispose()
    path = sqlite_url.removeprefix("sqlite:///")

    result = subprocess.run(
        [sys.executable, "-c", _RUN, sqlite_url, path], capture_output=True, text=True, timeout=120
    )

    lines = result.stdout.strip().splitlines()
    assert lines, f"the worker printed nothing:\n{result.stderr}"
    loaded = set(json.loads(lines[-1]))
    assert "postroom.core.worker.scheduler" in loaded and "postroom.plugins.protocols.maildir" in loaded
    assert "worker" in result.stderr and "stopped" in result.stderr  # it ran, and SIGTERM ended it
    imported = sorted(
        name for name in NOT_AT_START if name in loaded or any(m.startswith(f"{name}.") for m in loaded)
    )
    assert imported == []


#: A process that only talks to mail servers (a protocol plugin's own tests, or a future waiting
#: process that watches mailboxes and leaves storing to another) imports these without the
#: database stack: SQLAlchemy alone holds about 27 MiB of a process.
_MAIL_ONLY = """
import json, sys
import postroom
import postroom.core.contract.hooks
import postroom.plugins.protocols.imap, postroom.plugins.protocols.imap_idle
import postroom.plugins.protocols.pop3, postroom.plugins.protocols.maildir, postroom.plugins.protocols.smtp
before = sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy")
from postroom import set_ticket_attribute
from postroom.core.data.plugin_data import set_ticket_attribute as defined
print(json.dumps([before, set_ticket_attribute is defined]))
"""


def test_postroom_and_the_mail_protocols_import_without_the_database_stack() -> None:
    result = subprocess.run([sys.executable, "-c", _MAIL_ONLY], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    database_modules, same_function = json.loads(result.stdout)
    assert database_modules == []
    assert same_function  # the ticket-attribute functions are still there, imported when asked for
