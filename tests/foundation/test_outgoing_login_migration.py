"""Migration 0007 (issue 17): profiles stored before it keep logging in to their outgoing server as before."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from postroom.core.data.db import MIGRATIONS_DIR


def test_a_profile_from_before_0007_gets_outgoing_login_same_and_no_outgoing_secret(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def upgrade(revision: str) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    try:
        upgrade("0004")
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO contact_center (id, name, created_at) VALUES (1, 'Default', '2026-01-01')"))
            connection.execute(
                text(
                    "INSERT INTO media_profile (contact_center_id, media_profile_type, name, username, "
                    "outgoing_allowed, send_protocol, reply_to_enabled, delete_on_fetch, incoming_allowed, "
                    "fetch_protocol, fetch_interval, signature_position, tls_verify, status, "
                    "consecutive_failures, created_at, updated_at) VALUES (1, 'email', 'old', 'agent', "
                    "1, 'smtp', 0, 0, 0, 'none', 10, 'before', 1, 'ok', 0, '2026-01-01', '2026-01-01')"
                )
            )
        upgrade("0007")
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT outgoing_login, outgoing_username, outgoing_password_encrypted FROM media_profile")
            ).one()
    finally:
        engine.dispose()
    assert tuple(row) == ("same", None, None)
