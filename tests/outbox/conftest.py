"""Fixtures of the outbox tests: the desk of a test's database and its profile on the plain SMTP server."""

from __future__ import annotations

import pytest

from postroom.core.app import Postroom
from tests.servers.smtp import SmtpServers
from tests.support.desk import Desk


@pytest.fixture
def desk(app: Postroom) -> Desk:
    return Desk(app)


@pytest.fixture
def plain_profile(desk: Desk, smtp_servers: SmtpServers) -> int:
    return desk.smtp_profile("support", smtp_servers.plain)
