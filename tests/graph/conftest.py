"""Fixtures of the ``graph`` tests: the stand-in's CA trusted, a fresh mailbox, its connection settings."""

from __future__ import annotations

import uuid

import pytest

from postroom.core.contract.protocols import ConnectionSettings
from tests.servers import graph_tokens
from tests.servers.certs import Certificate
from tests.servers.graph_server import GraphStandIn


@pytest.fixture(autouse=True)
def graph_ca(certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the test CA the way an operator trusts a private one for requests-based protocols."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.cert))


@pytest.fixture
def graph_user(graph_server: GraphStandIn) -> str:
    """A fresh, empty mailbox of its own for each test."""
    address = f"desk-{uuid.uuid4().hex[:10]}@contoso.test"
    graph_server.add_user(address)
    return address


@pytest.fixture
def graph_settings(graph_server: GraphStandIn, graph_user: str) -> ConnectionSettings:
    return ConnectionSettings(
        profile_id=17,
        profile_name="m365",
        host=graph_server.base_url,
        port=443,
        username=graph_user,
        folder="Inbox",
        timeout=10,
        access_token=graph_tokens.mint(),
    )
