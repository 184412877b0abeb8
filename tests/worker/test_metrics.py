"""``GET /metrics`` of a real ``postroom run --admin-listen`` worker, and ``--log-format json``.

The worker fetches from the real Dovecot and sends through a real aiosmtpd server that refuses the
customer; each scrape is read with prometheus-client's own text parser, as Prometheus would read it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from postroom.core.app import Postroom
from postroom.core.contract import events
from postroom.core.worker.admin_http import new_admin_token
from postroom.core.worker.log_format import JsonFormatter
from postroom.core.worker.metrics import ProfileLabels, WorkerMetrics, fetch_lag
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import NO_SUCH_USER, SmtpScript, SmtpServers, free_port
from tests.support.cli import Cli
from tests.support.desk import CUSTOMER, Desk, add_dovecot_profile
from tests.support.mail import numbered_mail
from tests.worker.workers import Workers, profile_ids, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(port: int, token: str | None) -> tuple[int, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _samples(port: int, token: str) -> Samples:
    """Every sample of a scrape, parsed by the Prometheus parser, by (name, labels)."""
    status, text = _scrape(port, token)
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _scrape_until(
    port: int, token: str, done: Callable[[Samples], bool], what: str, log: Callable[[], str]
) -> Samples:
    """Scrape until ``done`` holds for a scrape; that scrape."""

    def scrape() -> Samples | None:
        samples = _samples(port, token)
        return samples if done(samples) else None

    return wait_until(scrape, 30, what, log)


def test_metrics_parse_and_move_when_a_mail_is_stored_and_when_a_send_fails(
    sqlite_url: str,
    sqlite_app: Postroom,
    dovecot: Dovecot,
    smtp_servers: SmtpServers,
    smtp_script: SmtpScript,
    workers: Workers,
) -> None:
    cli = Cli(sqlite_url)
    user, _ = dovecot.new_user("metrics")
    add_dovecot_profile(cli, dovecot, user, "imap", "--delete-on-fetch", "--fetch-interval", "1")
    desk = Desk(sqlite_app)
    desk.route("support")
    sender = desk.smtp_profile("desk", smtp_servers.plain)
    ticket = desk.ticket(sender, to="desk@postroom.test")
    smtp_script.refuse_recipient(CUSTOMER, NO_SUCH_USER)
    with sqlite_app.transaction() as session:
        token = new_admin_token(session)
    port = free_port()
    worker = workers.start("metrics", sqlite_url, "--admin-listen", f"127.0.0.1:{port}")
    worker.wait_started()

    # Behind the admin token: without it, or with a wrong one, nothing is told.
    assert _scrape(port, None)[0] == 401
    assert _scrape(port, "not-the-token")[0] == 401
    before = _samples(port, token)
    assert _value(before, "postroom_mails_stored_total") == 0
    assert _value(before, "postroom_database_up") == 1
    assert _value(before, "postroom_idle_connections") == 0
    assert _value(before, "postroom_outbox_depth", state="queued") == 0

    # A mail arrives: the stored counter moves, and its fetch lag is observed under its profile's label.
    dovecot.deliver(user, numbered_mail(1, date=datetime.now(UTC), tag="metrics"))
    stored = _scrape_until(
        port, token, lambda s: _value(s, "postroom_mails_stored_total") == 1, "the stored counter", worker.log
    )
    profile = str(profile_ids(sqlite_app)["support"])
    assert _value(stored, "postroom_fetch_lag_seconds_count", profile=profile) == 1
    assert _value(stored, "postroom_fetch_lag_seconds_bucket", profile=profile, le="+Inf") == 1
    assert not any(name == "postroom_send_failures_total" for name, _ in stored)

    # A reply the server refuses: the failure counter moves under its category and policy.
    cli.ok("ticket", "reply", str(ticket), "--body", "Your parcel is on its way.")
    failed = _scrape_until(
        port,
        token,
        lambda s: any(name == "postroom_send_failures_total" and v for (name, _), v in s.items()),
        "the send-failure counter",
        worker.log,
    )
    [(labels, count)] = [
        (dict(k), v) for (name, k), v in failed.items() if name == "postroom_send_failures_total"
    ]
    # 550 5.1.1: the seed's table calls it an addressing error, whose policy is not to retry.
    assert (labels, count) == ({"category": "addressing error", "policy": "no retry"}, 1)
    assert (
        _value(failed, "postroom_sends_abandoned_total", category="addressing error", policy="no retry") == 1
    )
    assert not any(name.endswith("_created") for name, _ in failed)
    assert _value(failed, "postroom_sends_succeeded_total") == 0
    assert _value(failed, "postroom_mails_stored_total") == 1
    assert token not in worker.log()


def test_metrics_without_token_serves_scrapes_with_no_credentials(sqlite_url: str, workers: Workers) -> None:
    port = free_port()
    worker = workers.start("open", sqlite_url, "--admin-listen", str(port), "--metrics-without-token")
    worker.wait_started()
    status, text = _scrape(port, None)
    assert status == 200, text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"postroom_mails_stored", "postroom_outbox_depth", "postroom_idle_connections"} <= names


def test_log_format_json_writes_one_json_object_per_line(sqlite_url: str, workers: Workers) -> None:
    worker = workers.start("json", sqlite_url, "--log-format", "json")
    worker.wait_started()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait() == 0
    lines = worker.log().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(records) >= 3, lines
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    started = next(r for r in records if r["message"].startswith("worker ") and "started" in r["message"])
    assert (started["level"], started["logger"]) == ("INFO", "postroom.worker")
    assert datetime.fromisoformat(started["time"]).tzinfo is not None
    assert any("stopped" in r["message"] for r in records)


def test_the_json_log_carries_an_exception_s_text_on_the_same_line() -> None:
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        record = logging.LogRecord(
            "postroom.x", logging.ERROR, __file__, 1, "failed: %s", ("it",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["message"] == "failed: it"
    assert document["level"] == "ERROR"
    assert "ValueError: line one\nline two" in document["exception"]
    assert "Traceback (most recent call last)" in document["exception"]


# --- without a worker process: the bounds and the failure modes of the metrics themselves ------------


def test_the_profile_label_is_bounded_to_the_first_profiles_and_the_rest_are_other() -> None:
    labels = ProfileLabels(limit=3)
    assert [labels(p) for p in (7, 8, 9, 10, 11, 7)] == ["7", "8", "9", "other", "other", "7"]
    assert {labels(p) for p in range(1000, 5000)} == {"other"}, "4000 more profiles add one series, not 4000"


def test_the_fetch_lag_is_read_from_the_date_header_and_a_future_date_counts_as_zero() -> None:
    now = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)
    assert fetch_lag(datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC), now) == 5.0
    assert fetch_lag(datetime(2026, 11, 30, 12, 0, 0), now) == 5.0  # "-0000": read as UTC
    assert fetch_lag(datetime(2026, 11, 30, 12, 1, 0, tzinfo=UTC), now) == 0.0  # the sender's clock is ahead
    assert fetch_lag(None, now) is None


def test_the_signals_move_their_counters_and_an_unreadable_database_gives_database_up_0(
    tmp_path: Path,
) -> None:
    app = Postroom(f"sqlite:///{tmp_path}/missing/postroom.sqlite")  # a directory that does not exist
    metrics = WorkerMetrics(app, "w1")
    metrics.start()
    try:
        before = _parse(metrics.scrape()[0])
        for signal_, kwargs in [
            (events.message_duplicate, {"profile_id": 1, "mailbox_key": "k", "message_id": "m"}),
            (events.message_quarantined, {"profile_id": 1, "message_pk": 1, "reason": "r"}),
            (events.message_unrouted, {"profile_id": 1, "message_pk": 1}),
            (events.profile_error, {"profile_id": 1, "reason": "r", "kind": "auth"}),
        ]:
            events.emit(signal_, None, **kwargs)
        after = _parse(metrics.scrape()[0])
    finally:
        metrics.stop()
        app.dispose()
    for name, labels in [
        ("postroom_mails_duplicate_total", {}),
        ("postroom_mails_quarantined_total", {}),
        ("postroom_mails_unrouted_total", {}),
        ("postroom_profile_errors_total", {"kind": "auth"}),
    ]:
        assert _value(after, name, **labels) == _value(before, name, **labels) + 1, name
    assert _value(after, "postroom_database_up") == 0
    assert not any(name == "postroom_outbox_depth" for name, _ in after)


def _parse(text: bytes) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }
