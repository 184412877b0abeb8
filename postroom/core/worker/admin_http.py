"""The worker's optional admin endpoint: the seed's reload URL and a health check, on loopback by default.

``POST /ameyorestapi/media/messages/reloadMediaProfileConfiguration`` with header ``sessionId: <token>``
reloads the configuration (the seed's curl command works as written); ``GET /health`` reports the
worker; ``GET /metrics`` gives its Prometheus metrics (core/worker/metrics.py). The token is made by
``postroom admin token``; only its SHA-256 is stored.

``/metrics`` asks for the same token, as ``Authorization: Bearer <token>`` (what Prometheus sends
with ``authorization: {credentials: ...}`` in a scrape config), unless the worker was started with
``--metrics-without-token``: metrics name no secret, but they do tell traffic volumes, error kinds
and the worker's host name to anyone who can reach the port, and the port may face more than
loopback. ``/health`` stays open, as load balancers probe it without credentials.

The endpoint faces whatever can reach its port, so it gives nobody more than a little: a client
that is idle or slow is disconnected after ``client_timeout`` seconds, the token is checked before
any body is read (a body is never needed), and at most ``max_clients`` connections are served at
once; the next one is answered 503 at once instead of getting a thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.orm import Session

from postroom.core.data.models import EngineSetting

log = logging.getLogger(__name__)

RELOAD_PATH = "/ameyorestapi/media/messages/reloadMediaProfileConfiguration"
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
TOKEN_SETTING = "admin_token_sha256"
#: Seconds a client may take to send its whole request; a half-sent request no longer holds a thread.
CLIENT_TIMEOUT = 10.0
#: Connections served at once: a reload and a few health probes never need more.
MAX_CLIENTS = 8
_BUSY_BODY = b'{"status": "error", "message": "Too many requests at once; try again."}'
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_admin_token(session: Session) -> str:
    """Make a new administrator token, store its hash (replacing the old one) and return it, once."""
    token = secrets.token_urlsafe(32)
    row = session.get(EngineSetting, TOKEN_SETTING)
    if row is None:
        session.add(EngineSetting(name=TOKEN_SETTING, value=_digest(token)))
    else:
        row.value = _digest(token)
    return token


def token_matches(session: Session, offered: str | None) -> bool:
    row = session.get(EngineSetting, TOKEN_SETTING)
    if row is None or not offered:
        return False
    return hmac.compare_digest(row.value, _digest(offered.strip()))


class _BoundedServer(ThreadingHTTPServer):
    """A threaded HTTP server that serves at most ``max_clients`` connections at once.

    Past the cap a connection is answered 503 on the accepting thread and closed, so a flood of
    connections costs one short write each, never a thread each.
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_clients: int
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_clients)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with suppress(OSError):
                request.settimeout(1.0)
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or was cut off: worth a debug line, not a traceback on stderr."""
        log.debug("admin: a connection from %s ended in an error", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Ipv6Server(_BoundedServer):
    """The same server on an IPv6 address (``--admin-listen [::1]:8025``)."""

    address_family = socket.AF_INET6


class AdminServer:
    """A small threaded HTTP server; ``reload`` and ``health`` are the worker's callbacks."""

    def __init__(
        self,
        host: str,
        port: int,
        check_token: Callable[[str | None], bool],
        reload: Callable[[], int],
        health: Callable[[], dict[str, Any]],
        *,
        metrics: Callable[[], tuple[bytes, str]] | None = None,
        metrics_need_token: bool = True,
        client_timeout: float = CLIENT_TIMEOUT,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # Applied to the connection's socket: a client that goes quiet is disconnected.
            timeout = client_timeout

            def setup(self) -> None:
                super().setup()
                # A client that trickles its request a byte at a time never goes quiet; the whole
                # request must arrive within the timeout, or the connection is shut.
                self._deadline = threading.Timer(client_timeout, self._cut_off)
                self._deadline.start()

            def _cut_off(self) -> None:
                with suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def parse_request(self) -> bool:
                parsed = super().parse_request()  # reads the headers
                self._deadline.cancel()  # the request is in: answering it may take its time
                return parsed

            def finish(self) -> None:
                self._deadline.cancel()
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("admin: " + format, *args)

            def _reply(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                try:
                    self._post()
                except Exception:
                    # Say so to the caller (curl shows it) instead of dropping the connection.
                    log.exception("admin: the reload failed")
                    self._reply(
                        500, {"status": "error", "message": "The reload failed; see the worker's log."}
                    )

            def _post(self) -> None:
                # No body is ever read: the reload needs none, and reading one before the token is
                # checked would let anyone make the worker wait for it. The connection closes after
                # the answer (HTTP/1.0), so an unread body does no harm.
                if self.path.split("?")[0] != RELOAD_PATH:
                    self._reply(404, {"status": "error", "message": "Not found."})
                    return
                if not server.check_token(self.headers.get("sessionId")):
                    log.warning(
                        "admin: refused a reload with a missing or wrong sessionId from %s",
                        self.client_address[0],
                    )
                    self._reply(401, {"status": "error", "message": "The sessionId is missing or wrong."})
                    return
                generation = server.reload()
                self._reply(
                    200,
                    {
                        "status": "ok",
                        "message": "Media profile configuration reloaded.",
                        "generation": generation,
                    },
                )

            def _bearer(self) -> str | None:
                """The token of ``Authorization: Bearer <token>``, or the ``sessionId`` header's."""
                scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() == "bearer" and credentials.strip():
                    return credentials.strip()
                return self.headers.get("sessionId")

            def _metrics(self) -> None:
                if server.metrics is None:
                    self._reply(404, {"status": "error", "message": "Not found."})
                    return
                if server.metrics_need_token and not server.check_token(self._bearer()):
                    log.warning(
                        "admin: refused a metrics scrape with a missing or wrong token from %s",
                        self.client_address[0],
                    )
                    self._reply(
                        401, {"status": "error", "message": "The bearer token is missing or wrong."}
                    )
                    return
                body, content_type = server.metrics()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.split("?")[0] == METRICS_PATH:
                    try:
                        self._metrics()
                    except Exception:  # e.g. the token could not be checked: the database is down
                        log.exception("admin: the metrics scrape failed")
                        self._reply(
                            503, {"status": "error", "message": "The scrape failed; see the worker's log."}
                        )
                    return
                if self.path.split("?")[0] != HEALTH_PATH:
                    self._reply(404, {"status": "error", "message": "Not found."})
                    return
                try:
                    document = server.health()
                except Exception:  # e.g. the database is down: unhealthy (the details go to the log only)
                    log.exception("admin: the health check failed")
                    self._reply(
                        503, {"status": "error", "message": "The health check failed; see the worker's log."}
                    )
                    return
                self._reply(200, document)

        self.check_token = check_token
        self.reload = reload
        self.health = health
        self.metrics = metrics
        self.metrics_need_token = metrics_need_token
        self.httpd = (_Ipv6Server if ":" in host else _BoundedServer)((host, port), Handler, max_clients)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="postroom-admin", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
