"""A mail a plugin broke: quarantined naming the plugin, shown, exported, and retried once the plugin
is out of the way, landing on its ticket exactly once.

The plugin is ``mail-breaker`` of the installed test distribution ``postroom-broken-plugins``
(tests/plugin_dists/broken): its inbound filter raises for a subject holding ``[break-plugin]``.
The mails come from the real Dovecot through a real fetch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from postroom.core.app import Postroom
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import Desk, add_dovecot_profile
from tests.support.mail import make_mail

BROKEN_SUBJECT = "Order 77 [break-plugin]"
REASON = "Plugin 'mail-breaker' failed on this mail: RuntimeError: mail-breaker choked on this subject"


def _quarantine_one(postroom_cli: Cli, app: Postroom, dovecot: Dovecot) -> tuple[int, bytes]:
    user, _ = dovecot.new_user("breaker")
    broken = make_mail(BROKEN_SUBJECT, sender="Eve <eve@example.org>", message_id="<break-1@example.org>")
    dovecot.deliver_many(user, [make_mail("Fine mail", sender="Ann <ann@example.org>"), broken])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap", "--delete-on-fetch")
    Desk(app).route("support")
    fetched = postroom_cli.run("fetch", "--json")
    assert fetched.exit_code == 0, fetched.stderr
    [report] = fetched.json()
    assert (report["fetched"], report["stored"], report["quarantined"], report["error"]) == (2, 1, 1, None)
    assert dovecot.count(user) == 0  # stored before deleted, the broken one too
    [held] = postroom_cli.ok("quarantine", "list", "--json").json()
    return int(held["id"]), broken


def test_a_mail_a_plugin_broke_is_quarantined_naming_it_and_the_traceback_is_logged_once(
    postroom_cli: Cli, app: Postroom, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        message_id, _ = _quarantine_one(postroom_cli, app, dovecot)
    [held] = postroom_cli.ok("quarantine", "list", "--json").json()
    assert (held["subject"], held["reason"]) == (BROKEN_SUBJECT, REASON)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
    assert tracebacks[0].getMessage().startswith(f"plugin mail-breaker failed on message {message_id} ")
    assert "mail-breaker choked on this subject" in caplog.text
    assert not any(p["status"] == "error" for p in postroom_cli.ok("profile", "list", "--json").json())


def test_quarantine_show_and_export_give_the_reason_and_the_exact_raw_bytes(
    postroom_cli: Cli, app: Postroom, dovecot: Dovecot, tmp_path: Path
) -> None:
    message_id, raw = _quarantine_one(postroom_cli, app, dovecot)
    shown = postroom_cli.ok("quarantine", "show", str(message_id)).stdout
    assert f"reason:       {REASON}" in shown and "Subject: Order 77 [break-plugin]" in shown
    assert postroom_cli.ok("quarantine", "show", str(message_id), "--json").json()["reason"] == REASON
    exported = tmp_path / "broken.eml"
    postroom_cli.ok("quarantine", "export", str(message_id), "-o", str(exported))
    # Dovecot hands back what was delivered (line ends as CRLF); the export is what was fetched.
    assert exported.read_bytes().replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    to_stdout = postroom_cli.run_process("quarantine", "export", str(message_id))
    # (read back as text, which turns CRLF into LF)
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout == exported.read_bytes().decode().replace("\r\n", "\n")
    missing = postroom_cli.run("quarantine", "show", "999999")
    assert missing.exit_code == 1 and "There is no message 999999" in missing.stderr


def test_after_the_plugin_is_fixed_quarantine_retry_puts_the_mail_on_its_ticket_exactly_once(
    postroom_cli: Cli, app: Postroom, dovecot: Dovecot
) -> None:
    message_id, _ = _quarantine_one(postroom_cli, app, dovecot)
    # While the plugin still breaks, a retry keeps it in quarantine (exit 1) with the reason.
    again = postroom_cli.run("quarantine", "retry", str(message_id))
    assert again.exit_code == 1 and f"Message {message_id}: quarantined ({REASON})" in again.stdout

    postroom_cli.ok("plugins", "disable", "mail-breaker")  # the operator's fix
    [result] = postroom_cli.ok("quarantine", "retry", str(message_id), "--json").json()
    assert result["status"] == "ticketed" and result["reason"] is None
    ticket = postroom_cli.ok("ticket", "show", str(result["ticket_id"]), "--json").json()
    assert [m["id"] for m in ticket["messages"]].count(message_id) == 1
    assert postroom_cli.ok("quarantine", "list", "--json").json() == []

    # Asked again (by ID or --all), nothing is doubled.
    twice = postroom_cli.run("quarantine", "retry", str(message_id))
    assert twice.exit_code == 1 and f"Message {message_id} is not in quarantine (it is ticketed)" in twice.stderr
    assert postroom_cli.ok("quarantine", "retry", "--all").stdout.strip() == "Nothing in quarantine."
    ticket = postroom_cli.ok("ticket", "show", str(result["ticket_id"]), "--json").json()
    assert [m["id"] for m in ticket["messages"]].count(message_id) == 1


def test_retry_all_takes_a_mail_quarantined_before_it_was_parsed_through_the_whole_pipeline(
    postroom_cli: Cli, app: Postroom
) -> None:
    """A mail quarantined unparsed (here: as a parser that failed would leave it) gets its fields on retry."""
    from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
    from postroom.core.data.profiles import get_profile
    from postroom.core.inbound.pipeline import InboundPipeline

    desk = Desk(app)
    desk.profile("support", subject_prefix="[ACME]")
    raw = make_mail("Where is my parcel?", sender="Bob <bob@example.org>")
    with app.transaction() as session:
        profile = get_profile(session, "support", DEFAULT_CONTACT_CENTER_ID)
        pk = InboundPipeline(session, app.plugins, profile).quarantine("k1", raw, "The parser gave up.").message_pk
    [result] = postroom_cli.ok("quarantine", "retry", "--all", "--json").json()
    assert (result["id"], result["status"]) == (pk, "ticketed")
    ticket = postroom_cli.ok("ticket", "show", str(result["ticket_id"]), "--json").json()
    assert ticket["subject"] == "Where is my parcel?"
    assert [m["id"] for m in ticket["messages"]] == [pk]
