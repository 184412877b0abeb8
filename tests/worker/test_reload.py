"""The admin endpoint of ``postroom run --admin-listen``: the seed's curl reload command with the token
``postroom admin token`` made, a wrong token refused with 401, and a changed ``maxRetryCount`` counting.

Replies are queued with ``postroom ticket reply`` and sent by the worker's outbox thread to a real
aiosmtpd server that refuses the recipient; ``outbox list`` and ``failures list`` show the attempts.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import text

from postroom.cli.worker import listen_address
from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError
from postroom.core.worker.admin_http import RELOAD_PATH
from tests.servers.smtp import SmtpScript, SmtpServers, free_port
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk
from tests.worker.workers import Workers, wait_until

NO_CODE = "550 Requested action not taken: mailbox unavailable"
MAILBOX_FULL = "452 4.2.2 Mailbox full"
OTHER_CUSTOMER = "dan.doe@example.org"


def _admin_token(database_url: str) -> str:
    """``postroom admin token``, run as an operator would; the token is the only line on stdout."""
    completed = Cli(database_url).run_process("admin", "token", timeout=60)
    assert completed.exit_code == 0, completed.stderr
    [token] = completed.stdout.split()
    assert "shown once" in completed.stderr
    return token


def _reload(port: int, token: str | None) -> tuple[int, dict[str, object]]:
    """The seed's command, ``curl -X POST http://127.0.0.1:PORT/ameyorestapi/media/messages/
    reloadMediaProfileConfiguration -H "sessionId: TOKEN"``: the status and the JSON answer."""
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


def _reply(cli: Cli, ticket_id: int, body: str) -> int:
    """``postroom ticket reply``; the outbox id of the queued reply."""
    return int(cli.ok("ticket", "reply", str(ticket_id), "--body", body, "--json").json()["outbox_id"])


def _failed(cli: Cli, outbox_id: int) -> dict[str, Any] | None:
    """The reply's ``outbox list`` entry once it has failed for good (None while it is still being tried)."""
    [row] = [r for r in cli.ok("outbox", "list", "--json").json() if r["id"] == outbox_id]
    return row if row["state"] == "failed" else None


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
    cli = Cli(pg_database_url)
    before = _reply(cli, first_ticket, "Your parcel is on its way.")
    assert (
        wait_until(lambda: _failed(cli, before), 20, "the first reply to fail", worker.log)["attempts"] == 4
    )

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
    unidentified = _reply(cli, first_ticket, "Your parcel is on its way, really.")
    full = _reply(cli, second_ticket, "Here is your invoice.")
    for outbox_id in (unidentified, full):
        row = wait_until(partial(_failed, cli, outbox_id), 20, "the reply to fail", worker.log)
        assert row["attempts"] == 2
    failures = cli.ok("failures", "list", "--outbox", str(unidentified), "--json").json()
    assert [(f["attempt"], f["category"], f["policy"]) for f in failures] == [
        (1, "unidentified error", "default retry"),
        (2, "unidentified error", "default retry"),
    ]
    first, second = cli.ok("failures", "list", "--outbox", str(full), "--json").json()
    assert (first["enhanced_code"], first["category"]) == ("4.2.2", "mailbox error")
    assert (first["policy"], second["policy"]) == ("progressive retry", "progressive retry")
    assert first["next_attempt_at"] is not None and second["next_attempt_at"] is None
    # The retry waited 1 x progressiveRetryInterval.
    waited = datetime.fromisoformat(second["created_at"]) - datetime.fromisoformat(first["created_at"])
    assert waited >= timedelta(seconds=1)
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


def test_the_admin_endpoint_listens_on_an_ipv6_address_in_brackets(sqlite_url: str, workers: Workers) -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as probe:
        port = probe.getsockname()[1]
    worker = workers.start("admin6", sqlite_url, "--admin-listen", f"[::1]:{port}")
    worker.wait_for_log(rf"admin endpoint on http://\[::1\]:{port} ")

    with urllib.request.urlopen(f"http://[::1]:{port}/health", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read())["status"] == "ok"

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.log()


@pytest.mark.parametrize(
    ("value", "address"),
    [("8025", ("127.0.0.1", 8025)), ("0.0.0.0:8025", ("0.0.0.0", 8025)), ("[::1]:8025", ("::1", 8025))],
)
def test_admin_listen_values(value: str, address: tuple[str, int]) -> None:
    assert listen_address(value) == address


@pytest.mark.parametrize("value", ["::1:8025", "[::1]", "host:", "port", "127.0.0.1:99999"])
def test_admin_listen_refuses_what_it_cannot_read_in_one_sentence(value: str) -> None:
    with pytest.raises(UserError) as refused:
        listen_address(value)
    assert str(refused.value).count(".") >= 1 and "\n" not in str(refused.value)
