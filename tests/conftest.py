"""Shared fixtures: databases (SQLite and PostgreSQL), real servers, and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.servers.certs",
    "tests.servers.databases",
    "tests.servers.dovecot",
    "tests.servers.smtp",
    "tests.servers.bounce_corpus",
    "tests.servers.ews_responder",
    "tests.servers.graph_server",
    "tests.support.cli",
]


@pytest.fixture(autouse=True)
def postroom_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own data directory (secret key, default database) and no inherited settings."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("POSTROOM_HOME", str(home))
    for name in ("POSTROOM_DATABASE_URL", "POSTROOM_SECRET_KEY", "POSTROOM_DISABLE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield home
