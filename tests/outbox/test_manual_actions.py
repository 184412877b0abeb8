"""``postroom outbox retry-now|cancel`` (the console's "Retry now" and "Cancel"): only a waiting reply is
changed; a sent, failed or unknown one is refused in one sentence."""

from __future__ import annotations

from datetime import timedelta

from postroom.core.data.models import utcnow
from postroom.core.outbound.manual import CANCELLED
from tests.outbox.helpers import NOW, outbox_rows, queue_customer_reply, send_at
from tests.servers.smtp import SmtpScript
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk

MAILBOX_FULL = "452 4.2.2 The mailbox is full"


def test_a_scheduled_retry_is_made_due_now_then_cancelled_and_a_finished_reply_is_refused(
    desk: Desk, plain_profile: int, smtp_script: SmtpScript, postroom_cli: Cli
) -> None:
    reply_id = queue_customer_reply(desk, plain_profile)
    smtp_script.refuse_recipient(CUSTOMER, MAILBOX_FULL)
    assert send_at(desk.app).retry_scheduled == 1
    [row] = outbox_rows(desk.app)
    assert row.state == "retry-scheduled" and row.next_attempt_at is not None and row.next_attempt_at > NOW

    said = postroom_cli.ok("outbox", "retry-now", str(reply_id)).stdout
    assert f"Reply {reply_id} is due now" in said
    [row] = outbox_rows(desk.app)
    assert row.state == "retry-scheduled" and row.next_attempt_at is not None
    assert row.next_attempt_at <= utcnow()  # due: the next send run takes it

    assert (
        postroom_cli.ok("outbox", "cancel", str(reply_id)).stdout.strip() == f"Reply {reply_id} is cancelled."
    )
    [row] = outbox_rows(desk.app)
    assert (row.state, row.last_error, row.next_attempt_at) == ("failed", CANCELLED, None)
    assert send_at(desk.app, NOW + timedelta(days=2)).sent == 0  # never sent after all

    again = postroom_cli.run("outbox", "cancel", str(reply_id))
    assert again.exit_code == 1
    assert (
        f"Reply {reply_id} is failed; only a queued or retry-scheduled reply can be cancelled."
        in again.stderr
    )
    missing = postroom_cli.run("outbox", "retry-now", "999999")
    assert missing.exit_code == 1 and "There is no outgoing reply 999999" in missing.stderr
