"""A signal subscriber from an installed plugin, in a running worker: it hears ``message-stored`` while
enabled, and nothing once ``postroom plugins disable`` and ``postroom reload`` have reached the worker.

The subscriber is the example distribution of docs/plugins/signals.md (examples/postroom-signal-audit,
installed by ./run-tests): it appends one JSON line per stored mail to ``$POSTROOM_SIGNAL_AUDIT_FILE``.
The worker is a real ``postroom run`` process fetching from the real Dovecot.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from postroom.core.app import Postroom
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.worker.workers import Workers, stored_counts, wait_until

AUDIT_ENV = "POSTROOM_SIGNAL_AUDIT_FILE"


def _audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_plugin_s_subscriber_hears_message_stored_until_disabled_and_reloaded(
    sqlite_url: str,
    sqlite_app: Postroom,
    dovecot: Dovecot,
    workers: Workers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv(AUDIT_ENV, str(audit))  # the worker process inherits it
    cli = Cli(sqlite_url)
    user, _ = dovecot.new_user("audit")
    add_dovecot_profile(cli, dovecot, user, "imap", "--delete-on-fetch", "--fetch-interval", "1")
    Desk(sqlite_app).route("support")
    dovecot.deliver(user, numbered_mail(1, tag="audit"))

    worker = workers.start("w1", sqlite_url, "--verbose")
    worker.wait_started()
    [heard] = wait_until(lambda: _audit(audit), 30, "the subscriber to hear the first mail", worker.log)
    assert heard["signal"] == "message-stored" and heard["message_id"] == "audit-1@example.org"
    assert heard["pid"] == worker.pid  # heard inside the worker, not in this test

    cli.ok("plugins", "disable", "signal-audit")
    reloaded = cli.ok("reload").stdout
    generation = re.search(r"generation (\d+)", reloaded)
    assert generation is not None
    worker.wait_for_log(rf"configuration generation {generation[1]} picked up", 30)

    dovecot.deliver(user, numbered_mail(2, tag="audit"))
    wait_until(lambda: stored_counts(sqlite_app)["audit-2@example.org"] == 1, 30, "mail 2 stored", worker.log)
    # The cycle's line comes after its commit and its signals: once it is logged, a receiver has run.
    wait_until(lambda: sum(c.stored for c in worker.cycles()) == 2, 30, "the second cycle's log line", worker.log)
    assert [line["message_id"] for line in _audit(audit)] == ["audit-1@example.org"]
    # The broken plugins installed next to it are told once each, not at every reload, with the remedy.
    told = [line for line in worker.log().splitlines() if "plugin broken-import is left out" in line]
    assert len(told) == 1, worker.log()
    assert told[0].endswith(
        "importing it raised RuntimeError: broken-import cannot be imported: its settings file is missing "
        "(to remove it: postroom plugins disable broken-import, or pip uninstall postroom-broken-plugins)"
    )
