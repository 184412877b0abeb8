"""A mailbox kept on the server: later cycles ask the server and the database only about new mail."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import event

from postroom.core.app import Postroom
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.profiles import get_profile
from postroom.core.inbound.fetch import Fetcher
from tests.servers.dovecot import Dovecot
from tests.support.cli import Cli
from tests.support.desk import add_dovecot_profile
from tests.support.mail import numbered_mail


def test_a_worker_asks_about_sizes_and_the_ledger_only_for_new_mail(
    postroom_cli: Cli, database_url: str, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    user, _ = dovecot.new_user("kept")
    dovecot.deliver_many(user, [numbered_mail(n) for n in range(60)])
    add_dovecot_profile(postroom_cli, dovecot, user, "imap")  # mail stays on the server
    app = Postroom(database_url)
    ledger_lookups: list[Any] = []

    def count_ledger_lookups(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM fetch_ledger" in statement:
            ledger_lookups.append(parameters)

    try:
        with app.sessions() as session:
            profile_id = get_profile(session, "support", DEFAULT_CONTACT_CENTER_ID).id
        fetcher = Fetcher(app)  # one worker keeps its fetcher from cycle to cycle
        assert fetcher.fetch_profile(profile_id).stored == 60
        dovecot.deliver_many(user, [numbered_mail(n) for n in range(60, 62)])
        event.listen(app.engine, "before_cursor_execute", count_ledger_lookups)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="imapclient.imaplib"):
            second = fetcher.fetch_profile(profile_id)
        event.remove(app.engine, "before_cursor_execute", count_ledger_lookups)
        third = fetcher.fetch_profile(profile_id)
    finally:
        app.dispose()

    assert (second.listed, second.stored, second.error) == (62, 2, None)
    assert (third.listed, third.stored) == (62, 0)
    # The database was asked about the two new keys only, not the sixty it already holds.
    assert len(ledger_lookups) == 1
    assert len(ledger_lookups[0]) <= 2 + 1  # two keys and the profile id
    # The server was asked the sizes of the two new mails only (imapclient logs each command sent).
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("> ")]
    size_queries = [command for command in sent if "RFC822.SIZE" in command]
    assert len(size_queries) == 1 and "UID FETCH 61,62 (RFC822.SIZE)" in size_queries[0]
