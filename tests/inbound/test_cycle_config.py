"""A fetch cycle reuses its profile's plugin and settings until the profile changes (issue 16).

The worker's Fetcher keeps, per profile, what it built from the profile's row; ``profile modify``
(or a change in SQL) must rebuild it, and a profile whose token comes from a hook is built anew
every cycle, because tokens expire.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text, update

from postroom.core.app import Postroom
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.protocols import ConnectionSettings, Mailbox
from postroom.core.data.models import MediaProfile
from postroom.core.inbound.fetch import Fetcher
from postroom.plugins.protocols.maildir import MaildirProtocol
from tests.support.cli import Cli
from tests.support.profiles import empty_maildir_profile


def test_profile_modify_rebuilds_the_settings_a_cycle_reuses(
    database_url: str, app: Postroom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str | None, str | None]] = []
    open_mailbox = MaildirProtocol.open_mailbox

    def recording(self: MaildirProtocol, settings: ConnectionSettings) -> Mailbox:
        opened.append((settings.username, settings.password))
        return open_mailbox(self, settings)

    monkeypatch.setattr(MaildirProtocol, "open_mailbox", recording)
    profile_id = empty_maildir_profile(app, tmp_path / "box", "support", 10)
    fetcher = Fetcher(app)
    assert fetcher.fetch_profile(profile_id).error is None
    assert fetcher.fetch_profile(profile_id).error is None
    assert fetcher.configs.builds == 1  # the second cycle reused the first one's settings

    Cli(database_url).ok("profile", "modify", "support", "--username", "changed", "--password-stdin", input="s3cret\n")
    assert fetcher.fetch_profile(profile_id).error is None

    assert fetcher.configs.builds == 2
    assert opened == [(None, None), (None, None), ("changed", "s3cret")]


def test_a_change_made_in_sql_rebuilds_them_too(app: Postroom, tmp_path: Path) -> None:
    profile_id = empty_maildir_profile(app, tmp_path / "first", "support", 10)
    fetcher = Fetcher(app)
    fetcher.fetch_profile(profile_id)
    with app.transaction() as session:
        session.execute(
            update(MediaProfile).where(MediaProfile.id == profile_id).values(incoming_folder=str(tmp_path / "gone"))
        )

    report = fetcher.fetch_profile(profile_id)

    assert fetcher.configs.builds == 2
    assert report.error is not None and "gone" in report.error


def test_a_profile_whose_token_a_plugin_may_give_is_built_every_cycle(
    database_url: str, tmp_path: Path
) -> None:
    asked: list[str] = []

    class Tokens:
        @hookimpl
        def postroom_get_access_token(self, profile: MediaProfile, server: str) -> str | None:
            asked.append(profile.name)
            return None

    app = Postroom(database_url, extra_plugins=[("tokens", Tokens())])
    try:
        profile_id = empty_maildir_profile(app, tmp_path / "box", "support", 10)
        fetcher = Fetcher(app)
        for _ in range(3):
            assert fetcher.fetch_profile(profile_id).error is None
    finally:
        app.dispose()

    assert asked == ["support"] * 3
    assert fetcher.configs.builds == 3


def test_an_empty_cycle_leaves_the_connection_committing_synchronously(
    pg_database_url: str, tmp_path: Path
) -> None:
    """Its own commit need not wait for the disk; the next user of the connection (a batch of mail) must."""
    app = Postroom(pg_database_url)
    try:
        profile_id = empty_maildir_profile(app, tmp_path / "box", "support", 10)
        app.engine.dispose()  # the cycle below takes the pool's only connection
        assert Fetcher(app).fetch_profile(profile_id).error is None
        assert app.engine.pool.checkedin() == 1
        with app.engine.connect() as connection:  # that very connection, back from the cycle
            assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
    finally:
        app.dispose()
