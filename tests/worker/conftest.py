"""Fixtures of the worker tests: workers that are always killed, and a database of each kind."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.core.app import Postroom
from tests.worker.workers import Workers


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """``workers.start(...)`` starts ``postroom run`` processes; any still running is killed at the end."""
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, initialised SQLite file of this test's own."""
    path = tmp_path / "postroom.sqlite"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_app(sqlite_url: str) -> Iterator[Postroom]:
    application = Postroom(sqlite_url)
    try:
        yield application
    finally:
        application.dispose()


@pytest.fixture
def pg_app(pg_database_url: str) -> Iterator[Postroom]:
    application = Postroom(pg_database_url)
    try:
        yield application
    finally:
        application.dispose()
