"""The admin endpoint of ``postroom run --admin-listen``: the seed's curl reload command with the token
``postroom admin token`` made, a wrong token refused with 401, and a changed ``maxRetryCount`` counting.

Replies are queued with ``queue_reply`` (what ``postroom ticket reply`` calls) and sent by the
worker's outbox thread to a real aiosmtpd server that refuses the recipient.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import timedelta

from sqlalchemy import select, text

from postroom.core.admin_http import RELOAD_PATH
from postroom.core.app import Postroom
from postroom.core.compose import QueuedReply, queue_reply
from postroom.core.models import FailedMessageSendInfo, SendState, SMessageSendInfo
from tests.outbox.helpers import CUSTOMER, Desk
from tests.servers.smtp import SmtpScript, SmtpServers, free_port
from tests.worker.workers import Workers, wait_until

NO_CODE = "550 Requested action not taken: mailbox unavailable"
MAILBOX_FULL = "452 4.2.2 Mailbox full"
OTHER_CUSTOMER = "dan.doe@example.org"


def _admin_token(database_url: str) -> str:
    """``postroom admin token``, run as an operator would; the token is the only line on stdout."""
    completed = subprocess.run(
        [sys.executable, "-m", "postroom", "admin", "token"],
        env={**os.environ, "POSTROOM_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [token] = completed.stdout.split()
    assert "shown once" in completed.stderr
    return token


def _reload(port: int, token: str | None) -> tuple[int, dict[str, object]]:
    """The seed's command: ``curl -X POST http://127.0.0.1:PORT/...reloadMediaProfileConfiguration -H "sessionId: TOKEN"``."""
    url = f"http://127.0.0.1:{port}{RELOAD_PATH}"
    if shutil.which("curl"):
        header = [] if token is None else ["-H", f"sessionId: {token}"]
        completed = subprocess.run(
            ["curl", "-X", "POST", url, *header, "--silent", "--write-out", "\n%{http_code}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, status = completed.stdout.rsplit("\n", 1)
        return int(status), json.loads(body)
    request = urllib.request.Request(
        url, method="POST", headers={} if token is None else {"sessionId": token}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _settled(app: Postroom, reply: QueuedReply) -> SMessageSendInfo | None:
    """The reply's outbox row once it has failed for good (None while it is still being tried)."""
    with app.sessions() as session:
        row = session.scalar(select(SMessageSendInfo).where(SMessageSendInfo.message_pk == reply.message_pk))
        return row if row is not None and row.state == SendState.FAILED else None


def _failures(app: Postroom, reply: QueuedReply) -> list[FailedMessageSendInfo]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(FailedMessageSendInfo)
                .join(SMessageSendInfo, SMessageSendInfo.id == FailedMessageSendInfo.send_info_id)
                .where(SMessageSendInfo.message_pk == reply.message_pk)
                .order_by(FailedMessageSendInfo.id)
            )
        )


def test_the_seeds_curl_reload_with_the_admin_token_makes_a_changed_max_retry_count_count(
    pg_database_url: str,
    pg_app: Postroom,
    smtp_servers: SmtpServers,
    smtp_script: SmtpScript,
    workers: Workers,
) -> None:
    desk = Desk(pg_app)
    profile_id = desk.smtp_profile("desk", smtp_servers.plain)
    # Written to the profile's own address, so a reply goes to the customer alone.
    first_ticket = desk.ticket(profile_id, to="desk@postroom.test")
    second_ticket = desk.ticket(
        profile_id, sender=f"Dan Doe <{OTHER_CUSTOMER}>", to="desk@postroom.test", subject="Invoice"
    )
    smtp_script.refuse_recipient(CUSTOMER, NO_CODE)
    smtp_script.refuse_recipient(OTHER_CUSTOMER, MAILBOX_FULL)
    token = _admin_token(pg_database_url)
    port = free_port()
    worker = workers.start("admin", pg_database_url, "--admin-listen", f"127.0.0.1:{port}", "--verbose")
    worker.wait_for_log(rf"admin endpoint on http://127\.0\.0\.1:{port} ")
    worker.wait_started()

    # A wrong or missing sessionId is refused, and nothing is reloaded.
    assert _reload(port, "not-the-token")[0] == 401
    assert _reload(port, None) == (401, {"status": "error", "message": "The sessionId is missing or wrong."})
    assert len(re.findall(r"refused a reload with a missing or wrong sessionId", worker.log())) == 2
    assert "picked up" not in worker.log()
    assert token not in worker.log()

    # With the seed's defaults (maxRetryCount 3) an unidentified error is tried four times.
    before = queue_reply(pg_app, 1, first_ticket, "Your parcel is on its way.")
    row = wait_until(lambda: _settled(pg_app, before), 20, "the first reply to fail", worker.log)
    assert row.attempts == 4

    # The seed's SQL, then its curl command: the worker picks up the new generation.
    with pg_app.engine.begin() as connection:
        connection.execute(
            text(
                "insert into media_profile_configuration(media_profile_id, contact_center_id, "
                "media_profile_type, media_profile_properties) values (:id, 1, 'email', "
                '\'{"maxRetryCount":"1","progressiveRetryInterval":"1"}\')'
            ),
            {"id": profile_id},
        )
    status, answer = _reload(port, token)
    assert status == 200, answer
    assert answer["status"] == "ok"
    worker.wait_for_log(rf"configuration generation {answer['generation']} picked up")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        health = json.loads(response.read())
    assert (health["status"], health["generation"]) == ("ok", answer["generation"])

    # Now both a default-retry and a progressive-retry failure stop after one retry.
    unidentified = queue_reply(pg_app, 1, first_ticket, "Your parcel is on its way, really.")
    full = queue_reply(pg_app, 1, second_ticket, "Here is your invoice.")
    for queued in (unidentified, full):
        row = wait_until(lambda q=queued: _settled(pg_app, q), 20, "the reply to fail", worker.log)  # type: ignore[misc]
        assert row.attempts == 2
    assert [(f.attempt, f.policy) for f in _failures(pg_app, unidentified)] == [
        (1, "default retry"),
        (2, "default retry"),
    ]
    first, second = _failures(pg_app, full)
    assert (first.policy, first.category, second.policy) == (
        "progressive retry",
        "mailbox error",
        "progressive retry",
    )
    assert first.next_attempt_at is not None and second.next_attempt_at is None
    assert second.created_at - first.created_at >= timedelta(seconds=1)  # 1 x progressiveRetryInterval
    assert smtp_servers.received() == []

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.log()


def test_an_admin_port_already_in_use_is_named_in_one_sentence(sqlite_url: str, workers: Workers) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        worker = workers.start("admin", sqlite_url, "--admin-listen", str(port))

        assert worker.wait(30) == 1
    assert worker.log().strip().splitlines()[-1] == (
        f"Error: The admin endpoint cannot listen on 127.0.0.1:{port}: Address already in use."
    )
