"""The demo's sink (``demo-sink``): a Maildir that answers like a server, registered by the demo alone."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from postroom.core.app import Postroom
from postroom.core.contract.protocols import ConnectionSettings
from postroom.demo.sink import DemoSinkProtocol
from postroom.demo.story import run_demo
from tests.support.mail import make_mail


def sink(path: Path) -> ConnectionSettings:
    return ConnectionSettings(
        profile_id=1, profile_name="support", host=None, port=None, username=None, folder=str(path)
    )


def written(path: Path) -> list[bytes]:
    return [mail.read_bytes() for mail in (path / "new").iterdir()]


def test_the_sink_reports_each_refused_recipient_and_delivers_once_to_the_rest(tmp_path: Path) -> None:
    mail = make_mail("Re: Order 1")
    recipients = ["customer@example.org", "nobody@gone.invalid", "refuse-me@example.org", "busy.bee@example.org"]

    with DemoSinkProtocol().open_sender(sink(tmp_path / "sent")) as sender:
        report = sender.send("support@example.test", recipients, mail)

    assert {address: failure.reply_code for address, failure in report.refused.items()} == {
        "nobody@gone.invalid": 550,
        "refuse-me@example.org": 550,
        "busy.bee@example.org": 452,
    }
    assert report.refused["busy.bee@example.org"].text == (
        "452 4.2.2 <busy.bee@example.org>: Mailbox full, try again later"
    )
    assert all(address == failure.recipient for address, failure in report.refused.items())
    assert written(tmp_path / "sent") == [mail]


@pytest.mark.parametrize(
    "recipients", [["customer@shop.invalid"], ["refuse-me@example.org"], ["busy.erin@x.example", "a@b.invalid"]]
)
def test_when_the_sink_refuses_every_recipient_all_are_in_the_report_and_nothing_is_written(
    tmp_path: Path, recipients: list[str]
) -> None:
    with DemoSinkProtocol().open_sender(sink(tmp_path / "sent")) as sender:
        report = sender.send("support@example.test", recipients, make_mail())

    assert list(report.refused) == recipients
    assert report.refused[recipients[-1]].text.startswith("550 5.1.1 <")
    assert written(tmp_path / "sent") == []


def test_no_postroom_but_the_demo_knows_the_sink(tmp_path: Path) -> None:
    app = Postroom(f"sqlite:///{tmp_path / 'postroom.sqlite'}")
    try:
        assert "demo-sink" not in app.plugins.protocols
        assert "demo-sink" not in app.plugins.names()
    finally:
        app.dispose()


def _postroom(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "postroom", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_after_the_demo_its_home_shows_tickets_and_send_says_the_sink_is_the_demos_own(
    tmp_path: Path,
) -> None:
    home = tmp_path / "demo"
    home.mkdir()
    run_demo(home).app.dispose()
    # Erin's reply waits for its retry; once it is due, a plain 'postroom send' has no sink.
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    shown = _postroom(home, "ticket", "show", "1")
    modified = _postroom(home, "profile", "modify", "support", "--subject-prefix", "[ACME Support]")
    sent = _postroom(home, "send", "--now", later)
    listed = _postroom(home, "outbox", "list", "--json")

    assert shown.returncode == 0, shown.stderr
    assert "Where is my order #1001?" in shown.stdout
    assert modified.returncode == 0, modified.stderr
    assert sent.returncode == 0, sent.stderr
    assert "Sent 0, retry scheduled 0, failed 1." in sent.stdout
    assert "Send protocol 'demo-sink' of profile 'support' has no installed, enabled plugin." in listed.stdout
