"""``postroom demo``: the whole job on the embedded default, in a real process, with no server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_whole_job_and_prints_tickets_and_the_send_log(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_HOME"] = str(tmp_path / "home")
    # No proxy, no DNS: everything the demo needs is local.
    env["http_proxy"] = env["https_proxy"] = "http://127.0.0.1:9"
    done = subprocess.run(
        [sys.executable, "-m", "postroom", "demo", "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Fetched 8 mails" in out and "stored 8" in out
    tickets = out.split("Tickets\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(tickets) == 1 + 4  # header + four tickets
    alice = next(line for line in tickets if "Where is my order #1001?" in line)
    assert (
        alice.split()[-1] == "5"
    )  # first mail, its reply, the second address, the Cc'd colleague, our reply
    assert "yes" in next(
        line for line in tickets if "Cancel my subscription" in line
    )  # the bounce escalated it
    log = out.split("Send log", 1)[1]
    assert " sent " in log
    assert "retry-scheduled" in log and "progressive retry" in log and "mailbox error" in log
    sent = list((home / "sent" / "new").iterdir())
    assert len(sent) == 1 and b"Re: [ACME] Where is my order #1001? [#PR-1]" in sent[0].read_bytes()
    assert list((home / "mailbox" / "new").iterdir()) == []  # stored, then deleted on fetch


def test_demo_refuses_a_home_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "postroom", "demo", "--home", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "is not empty" in done.stderr
