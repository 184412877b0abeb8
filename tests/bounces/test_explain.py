"""``postroom bounce explain FILE``: each reader's verdict and the merged report, for operators."""

from __future__ import annotations

from pathlib import Path

from tests.bounces.corpus import CORPUS
from tests.support.cli import Cli

AOL = CORPUS / "aol-blocks-without-blank-line.eml"


def test_explain_shows_each_readers_verdict_and_the_merged_report(postroom_cli: Cli) -> None:
    out = postroom_cli.ok("bounce", "explain", str(AOL)).stdout
    assert "Reader bounce-dsn: format rfc3464, reporting server omr-m09.mx.aol.com" in out
    assert "Reader bounce-flufl: format flufl.bounce" in out
    merged = out.split("Merged report:", 1)[1]
    assert "sabineko@example.jp  5.2.2   mailbox full  soft" in merged
    assert "mikeneko@example.jp  5.1.1   unknown user  hard" in merged
    assert "Original Message-IDs: B4275A84-198A-4453-A5F3-0DB49E352EAD@aol.example.jp" in merged
    assert "Verdict: hard failure of mikeneko@example.jp" in merged


def test_explain_json_and_a_forwarded_bounce(postroom_cli: Cli) -> None:
    document = postroom_cli.ok("bounce", "explain", str(CORPUS / "forwarded-rfc822.eml"), "--json").json()
    assert document["forwarded"] == "message/rfc822"
    assert [v["reader"] for v in document["verdicts"]][-1] == "bounce-text (forwarded)"
    [recipient] = document["merged"]["recipients"]
    assert (recipient["address"], recipient["status"], recipient["hard"]) == ("nobody.fwd@example.com", "5.1.1", True)
    assert document["merged"]["original_message_ids"] == ["postroom.corpus.forwarded@acme.test"]


def test_explain_of_a_customer_mail_and_of_a_non_mail(postroom_cli: Cli, tmp_path: Path) -> None:
    mail = tmp_path / "question.eml"
    mail.write_bytes(b"From: carla@example.org\nTo: support@acme.test\nSubject: Order 4711\n\nWhere is it?\n")
    assert postroom_cli.ok("bounce", "explain", str(mail)).stdout.strip() == (
        "No bounce reader takes this mail for a bounce."
    )
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a mail")
    refused = postroom_cli.run("bounce", "explain", str(junk))
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1 and "is not a mail" in refused.stderr
