"""Real aiosmtpd servers for the send side, started once per session: STARTTLS+AUTH, SMTPS+AUTH, plain,
AUTH without TLS (for profiles that allow plain-text login), and a relay that offers STARTTLS but no
AUTH at all (for profiles whose outgoing login is ``none``).

Every mail they accept is recorded with the server that took it. A test scripts refusals (per
recipient, MAIL FROM, DATA) and hang-ups through ``smtp_script``, which starts each test clean.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import socket
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from postroom.core.contract.protocols import ConnectionSettings
from tests.servers.certs import Certificate

SMTP_USERNAME = "agent@example.test"
SMTP_PASSWORD = "correct horse battery"
#: The OAuth2 access token the STARTTLS and SMTPS servers accept for SMTP_USERNAME (AUTH XOAUTH2).
SMTP_ACCESS_TOKEN = "ya29.test-access-token"
NO_SUCH_USER = "550 5.1.1 The email account that you tried to reach does not exist"

ServerName = Literal["starttls", "smtps", "plain", "plainauth", "relay"]
SERVER_NAMES: tuple[ServerName, ...] = ("starttls", "smtps", "plain", "plainauth", "relay")
Command = Literal["MAIL", "RCPT", "DATA"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    """One mail a test server accepted. Mails with the same ``peer`` came over the same connection."""

    server: ServerName
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes
    peer: tuple[str, int]
    tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        message = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class _Rule:
    reply: str | None  # None: close the connection without answering
    remaining: int | None  # None: every time until reset


class SmtpScript:
    """What the servers answer instead of ``250 OK``; shared by all three servers, reset for every test.

    ``times`` limits a rule to the next N matching commands (None: until the test ends), so a
    test can make the first attempt fail and the retry succeed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[tuple[Command, str], _Rule] = {}

    def refuse_recipient(self, address: str, reply: str = NO_SUCH_USER, *, times: int | None = None) -> None:
        """Answer ``RCPT TO:<address>`` with ``reply`` (matched case-insensitively)."""
        self._set("RCPT", address, reply, times)

    def refuse_sender(self, reply: str, *, address: str | None = None, times: int | None = None) -> None:
        """Answer ``MAIL FROM`` with ``reply``: for ``address`` only, or for any sender."""
        self._set("MAIL", address, reply, times)

    def refuse_data(self, reply: str, *, times: int | None = None) -> None:
        """Answer the end of DATA with ``reply``; write a multi-line one as ``"550-...\\r\\n550 ..."``."""
        self._set("DATA", None, reply, times)

    def hang_up(self, command: Command, *, times: int | None = 1) -> None:
        """Close the connection without a reply when the client sends ``command`` (the mail is not taken)."""
        self._set(command, None, None, times)

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()

    def _set(self, command: Command, address: str | None, reply: str | None, times: int | None) -> None:
        with self._lock:
            self._rules[(command, (address or "*").casefold())] = _Rule(reply, times)

    def take(self, command: Command, address: str | None) -> _Rule | None:
        """The rule that answers this command now (counting it down), or None to accept."""
        with self._lock:
            for key in ((command, (address or "*").casefold()), (command, "*")):
                rule = self._rules.get(key)
                if rule is None:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        del self._rules[key]
                return rule
        return None


class _Log:
    """The mails and connections all servers saw, read by tests from the main thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mails: list[ReceivedMail] = []
        self.sessions: dict[ServerName, list[SMTP]] = {name: [] for name in SERVER_NAMES}


class _Handler:
    """aiosmtpd hooks of one server: apply the script, record what was accepted."""

    def __init__(self, name: ServerName, script: SmtpScript, log: _Log) -> None:
        self.name, self.script, self.log = name, script, log

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rule = self.script.take("MAIL", address)
        if rule is not None:
            return self._answer(server, rule)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rule = self.script.take("RCPT", address)
        if rule is not None:
            return self._answer(server, rule)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rule = self.script.take("DATA", None)
        if rule is not None:
            return self._answer(server, rule)
        assert server.transport is not None
        mail = ReceivedMail(
            server=self.name,
            envelope_from=str(envelope.mail_from),
            recipients=tuple(envelope.rcpt_tos),
            raw=bytes(envelope.original_content or b""),
            peer=tuple(server.transport.get_extra_info("peername")[:2]),
            tls=server.transport.get_extra_info("sslcontext") is not None,
            login=session.auth_data if session.authenticated else None,
        )
        with self.log.lock:
            self.log.mails.append(mail)
        return "250 2.0.0 OK: queued"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 as Gmail and Microsoft 365 speak it: a refused token first gets a 334 with
        the error as JSON, which the client answers with an empty line, then the 535."""
        if len(args) == 2:
            blob = base64.b64decode(args[1])
        else:
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            assert isinstance(answer, bytes)
            blob = answer
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        if fields.get("user") == SMTP_USERNAME and fields.get("auth") == f"Bearer {SMTP_ACCESS_TOKEN}":
            return AuthResult(success=True, auth_data=SMTP_USERNAME)
        await server.challenge_auth('{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}')
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    @staticmethod
    def _answer(server: SMTP, rule: _Rule) -> str:
        if rule.reply is None:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 Connection dropped by the test script"
        return rule.reply


class _RelayHandler(_Handler):
    """A relay's hooks: no AUTH line in the EHLO answer (aiosmtpd always writes one, even empty)."""

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [line for line in responses if not line.startswith("250-AUTH")]


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    if (
        isinstance(data, LoginPassword)
        and data.login == SMTP_USERNAME.encode()
        and data.password == SMTP_PASSWORD.encode()
    ):
        return AuthResult(success=True, auth_data=SMTP_USERNAME)
    # handled=False lets aiosmtpd answer 535; handled=True without a reply leaves the client hanging.
    return AuthResult(success=False, handled=False)


class _TrackingController(Controller):
    """A Controller that remembers its server sessions, so tests can count or drop connections."""

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._handler = handler

    def factory(self) -> SMTP:
        with warnings.catch_warnings():
            # SMTPS requires AUTH without aiosmtpd's notion of TLS (STARTTLS only): intended here.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            smtp = super().factory()
        with self._handler.log.lock:
            self._handler.log.sessions[self._handler.name].append(smtp)
        return smtp


@dataclass(frozen=True)
class SmtpEndpoint:
    """Where one test server listens, and the postroom send protocol that talks to it."""

    name: ServerName
    host: str
    port: int
    protocol: Literal["smtp", "smtps"]
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def settings(self, **overrides: Any) -> ConnectionSettings:
        """Connection settings for this server, with its login; ``tls_verify`` is off (self-signed cert)."""
        base = ConnectionSettings(
            profile_id=1,
            profile_name="outbound test",
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            tls_verify=False,
            timeout=10.0,
        )
        return replace(base, **overrides)


class SmtpServers:
    """The five running servers, what they received, and the script they follow."""

    def __init__(self, endpoints: dict[ServerName, SmtpEndpoint]) -> None:
        self.starttls = endpoints["starttls"]
        self.smtps = endpoints["smtps"]
        self.plain = endpoints["plain"]
        self.plainauth = endpoints["plainauth"]
        self.relay = endpoints["relay"]
        self.script = SmtpScript()
        self._endpoints = endpoints
        self._log = _Log()
        self._controllers: dict[ServerName, Controller] = {}

    def start(self, options: dict[ServerName, dict[str, Any]]) -> None:
        """Start one aiosmtpd Controller per endpoint with its aiosmtpd ``SMTP`` options."""
        for name, endpoint in self._endpoints.items():
            handler = (_RelayHandler if name == "relay" else _Handler)(name, self.script, self._log)
            controller = _TrackingController(
                handler,
                hostname=endpoint.host,
                port=endpoint.port,
                server_hostname="smtp.postroom.test",
                ready_timeout=15.0,
                **options[name],
            )
            controller.start()
            self._controllers[name] = controller
        self.clear()  # the Controllers' readiness probes are no test's connections

    def stop(self) -> None:
        for controller in self._controllers.values():
            controller.stop()
        self._controllers.clear()

    def received(self, server: ServerName | None = None) -> list[ReceivedMail]:
        """The mails accepted since the test began, oldest first; all servers' unless one is named."""
        with self._log.lock:
            return [mail for mail in self._log.mails if server is None or mail.server == server]

    def connections(self, server: ServerName) -> int:
        """How many TCP connections this server accepted since the test began."""
        with self._log.lock:
            return len(self._log.sessions[server])

    def drop_connections(self) -> None:
        """Close every open connection from the server side, as an idle timeout would."""
        with self._log.lock:
            sessions = [(name, smtp) for name, items in self._log.sessions.items() for smtp in items]
        futures = [
            asyncio.run_coroutine_threadsafe(_close(smtp), self._controllers[name].loop)
            for name, smtp in sessions
        ]
        for future in futures:
            future.result(timeout=5)

    def clear(self) -> None:
        """Forget received mails and connections, and reset the script."""
        self.script.reset()
        with self._log.lock:
            self._log.mails.clear()
            for items in self._log.sessions.values():
                items.clear()


async def _close(smtp: SMTP) -> None:
    if smtp.transport is not None and not smtp.transport.is_closing():
        smtp.transport.close()


@pytest.fixture(scope="session")
def smtp_servers(certificate: Certificate) -> Iterator[SmtpServers]:
    """Start the five aiosmtpd servers once for the session, on free ports of 127.0.0.1."""
    context = certificate.server_context()
    ports = {name: free_port() for name in SERVER_NAMES}
    servers = SmtpServers(
        {
            "starttls": SmtpEndpoint(
                "starttls", "127.0.0.1", ports["starttls"], "smtp", SMTP_USERNAME, SMTP_PASSWORD
            ),
            "smtps": SmtpEndpoint(
                "smtps", "127.0.0.1", ports["smtps"], "smtps", SMTP_USERNAME, SMTP_PASSWORD
            ),
            "plain": SmtpEndpoint("plain", "127.0.0.1", ports["plain"], "smtp"),
            # No STARTTLS at all, yet AUTH: what a profile allowed to log in unencrypted talks to.
            "plainauth": SmtpEndpoint(
                "plainauth", "127.0.0.1", ports["plainauth"], "smtp", SMTP_USERNAME, SMTP_PASSWORD
            ),
            # STARTTLS offered, not required, and no AUTH at all: a relay that takes mail without a login.
            "relay": SmtpEndpoint("relay", "127.0.0.1", ports["relay"], "smtp"),
        }
    )
    try:
        servers.start(
            {
                "starttls": {
                    "tls_context": context,
                    "require_starttls": True,
                    "auth_required": True,
                    "authenticator": _authenticate,
                },
                # aiosmtpd counts only STARTTLS as TLS, hence auth_require_tls=False on implicit TLS.
                "smtps": {
                    "ssl_context": context,
                    "auth_required": True,
                    "auth_require_tls": False,
                    "authenticator": _authenticate,
                },
                "plain": {},
                "plainauth": {"auth_require_tls": False, "authenticator": _authenticate},
                # Every mechanism excluded too: an AUTH the client sends regardless is answered 504.
                "relay": {"tls_context": context, "auth_exclude_mechanism": ["LOGIN", "PLAIN", "XOAUTH2"]},
            }
        )
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def smtp_script(smtp_servers: SmtpServers) -> Iterator[SmtpScript]:
    """The servers' script, empty; received mails and connection counts are cleared too."""
    smtp_servers.clear()
    try:
        yield smtp_servers.script
    finally:
        smtp_servers.script.reset()


@pytest.fixture
def refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    return free_port()
