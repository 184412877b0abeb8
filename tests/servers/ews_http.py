"""The HTTP(S) transport of the EWS STAND-IN: one POST endpoint, Basic or bearer authentication, SOAP in and out."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.servers.ews_responder import EwsStandIn

ENDPOINT_PATH = "/EWS/Exchange.asmx"
REALM = "ews-stand-in"


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive matters: exchangelib treats "Connection: close" as a busy server.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write (flushed per request), or delayed ACKs slow every call.
    wbufsize = 1 << 16
    server: EwsHttpServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.lower() != ENDPOINT_PATH.lower():
            self._reply(404, b"Not an EWS endpoint.", "text/plain")
            return
        stand_in = self.server.stand_in
        mailbox = stand_in.authenticate(self.headers.get("Authorization"), body)
        if mailbox is None:
            self._reply(401, b"Unauthorized.", "text/plain", {"WWW-Authenticate": f'Basic realm="{REALM}"'})
            return
        status, answer = stand_in.answer(mailbox, body)
        self._reply(status, answer, "text/xml; charset=utf-8")

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``operations`` instead of an access log."""


class EwsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stand_in: EwsStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stand_in = stand_in

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients that refuse the self-signed certificate or hang up are expected here."""


def start_serving(server: EwsHttpServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="ews-stand-in", daemon=True)
    thread.start()
    return thread
