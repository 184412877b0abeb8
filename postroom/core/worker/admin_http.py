"""The worker's optional admin endpoint: the seed's reload URL and a health check, on loopback by default.

``POST /ameyorestapi/media/messages/reloadMediaProfileConfiguration`` with header ``sessionId: <token>``
reloads the configuration (the seed's curl command works as written); ``GET /health`` reports the
worker. The token is made by ``postroom admin token``; only its SHA-256 is stored.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.orm import Session

from postroom.core.data.models import EngineSetting

log = logging.getLogger(__name__)

RELOAD_PATH = "/ameyorestapi/media/messages/reloadMediaProfileConfiguration"
HEALTH_PATH = "/health"
TOKEN_SETTING = "admin_token_sha256"


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


class _Ipv6Server(ThreadingHTTPServer):
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
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
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
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = 0
                if length > 0:
                    self.rfile.read(min(length, 1 << 16))
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

            def do_GET(self) -> None:
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
        self.httpd = (_Ipv6Server if ":" in host else ThreadingHTTPServer)((host, port), Handler)
        self.httpd.daemon_threads = True
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
