"""Mail servers that take OAuth2 bearer tokens from the OAuth2 stand-in, started once per test session.

- :class:`OAuthDovecot`: a real Dovecot 2.3 whose ``oauth2`` passdb checks XOAUTH2/OAUTHBEARER
  tokens by RFC 7662 introspection at the stand-in (``introspection_url``, over HTTPS verified
  with the test certificate), as it would at a real identity provider. Password logins stay for
  the tests' own helpers (placing mail).
- :class:`OAuthSmtp`: an aiosmtpd server (STARTTLS) whose AUTH XOAUTH2 checks the token with the
  stand-in's ``verify`` and that it was issued for the user named, as Exchange Online and Gmail do.
"""

from __future__ import annotations

import base64
import collections
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from tests.servers.certs import Certificate
from tests.servers.dovecot import Dovecot
from tests.servers.oauth_server import OAuthServer
from tests.servers.smtp import free_port

OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}/introspect
force_introspection = yes
username_attribute = email
active_attribute = active
active_value = true
tls_ca_cert_file = {ca}
timeout_msecs = 10000
"""

OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {conf}
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
"""


class OAuthDovecot(Dovecot):
    """Dovecot with an oauth2 passdb that introspects bearer tokens at the OAuth2 stand-in."""

    def __init__(self, base: Path, certificate: Certificate, oauth: OAuthServer) -> None:
        super().__init__(base, certificate)
        self.oauth = oauth

    def write_config(self) -> None:
        super().write_config()
        conf = self.base / "dovecot-oauth2.conf.ext"
        conf.write_text(OAUTH2_CONF.format(url=self.oauth.url, ca=self.certificate.cert))
        conf.chmod(0o644)
        text = self.config_path.read_text()
        text = text.replace("passdb {\n  driver = passwd-file\n", OAUTH2_PASSDB.format(conf=conf), 1)
        self.config_path.write_text(text)


@pytest.fixture(scope="session")
def oauth_dovecot(certificate: Certificate, oauth_server: OAuthServer) -> Iterator[OAuthDovecot]:
    base = Path(tempfile.mkdtemp(prefix="do", dir="/tmp"))
    base.chmod(0o755)
    server = OAuthDovecot(base, certificate, oauth_server)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class OAuthSmtp:
    """The running server: where it listens, what it accepted, which tokens it took."""

    host: str
    port: int
    mails: list[tuple[str, bytes]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler:
    def __init__(self, server: OAuthSmtp, oauth: OAuthServer) -> None:
        self.server, self.oauth = server, oauth

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        with self.server.lock:
            self.server.mails.append((str(session.auth_data), bytes(envelope.original_content or b"")))
        return "250 2.0.0 OK: queued"

    async def auth_XOAUTH2(self, smtp: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            blob = base64.b64decode(args[1])
        else:
            answer = await smtp.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            assert isinstance(answer, bytes)
            blob = answer
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user, auth = fields.get("user", ""), fields.get("auth", "")
        token = auth.removeprefix("Bearer ")
        claims = self.oauth.verify(token) if auth.startswith("Bearer ") else None
        # A user's token must be that user's; an application's must carry the SMTP.SendAsApp role.
        if claims is not None and (
            claims.get("upn", "").lower() == user.lower() or "SMTP.SendAsApp" in claims.get("roles", [])
        ):
            with self.server.lock:
                self.server.tokens.append(token)
            return AuthResult(success=True, auth_data=user)
        with self.server.lock:
            self.server.refused += 1
        await smtp.challenge_auth('{"status":"401","schemes":"bearer"}')
        return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")


class _LongLines(SMTP):
    """Exchange Online and Gmail take AUTH lines of a few kilobytes (a JWT); aiosmtpd's default is 512 bytes."""

    line_length_limit = command_size_limit = 16384
    command_size_limits: dict[str, int] = collections.defaultdict(lambda: 16384)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _LongLines(self.handler, **self.SMTP_kwargs)


def start_oauth_smtp(certificate: Certificate, oauth: OAuthServer) -> tuple[OAuthSmtp, Controller]:
    """Start the XOAUTH2 SMTP server on a free port of 127.0.0.1; stop it with the controller."""
    server = OAuthSmtp("127.0.0.1", free_port())
    controller = _Controller(
        _Handler(server, oauth),
        hostname=server.host,
        port=server.port,
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
    )
    controller.start()
    return server, controller


@pytest.fixture(scope="session")
def oauth_smtp(certificate: Certificate, oauth_server: OAuthServer) -> Iterator[OAuthSmtp]:
    server, controller = start_oauth_smtp(certificate, oauth_server)
    try:
        yield server
    finally:
        controller.stop()
