"""Fixtures of the OAuth2 tests: token lifetimes set per test, and sign-ins driven as an operator would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers.oauth_server import OAuthServer


@pytest.fixture
def token_lifetime(oauth_server: OAuthServer) -> Iterator[Any]:
    """Set the stand-in's token lifetime for one test (``token_lifetime(3)``); restored afterwards."""
    before = oauth_server.issuer.token_lifetime

    def set_lifetime(seconds: int) -> None:
        oauth_server.issuer.token_lifetime = seconds

    yield set_lifetime
    oauth_server.issuer.token_lifetime = before


def authority_options(oauth_server: OAuthServer) -> list[str]:
    """Point a sign-in at the stand-in, verified with the test certificate (never unverified)."""
    return ["--authority", oauth_server.url, "--ca-file", str(oauth_server.ca_file)]


class SignIn:
    """``postroom oauth connect ...`` as a real process whose output a test reads while it waits."""

    def __init__(self, database_url: str, *args: str, secret: str | None = None) -> None:
        env = {**os.environ, "POSTROOM_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postroom", "oauth", "connect", *args],
            stdin=subprocess.DEVNULL if secret is None else subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        if secret is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(secret + "\n")
            self.process.stdin.close()
            self.process.stdin = None
        self.lines: list[str] = []

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Read output lines until one matches ``pattern`` (the process fails the test if it ends first)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        self.finish()
        raise AssertionError(f"'oauth connect' ended without printing {pattern!r}: {''.join(self.lines)}")

    def finish(self, timeout: float = 60) -> str:
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        output = "".join(self.lines) + out
        assert self.process.returncode == 0, f"oauth connect failed: {err or output}"
        return output
