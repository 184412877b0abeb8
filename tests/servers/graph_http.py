"""The HTTPS transport of the Microsoft Graph STAND-IN: every verb to one answer function."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.servers.graph_server import GraphStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    server: GraphHttpServer

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, answer, headers = self.server.stand_in.answer(self.command, self.path, self.headers, body)
        # Links name the user as the request did: Graph echoes the path it was called with.
        if b"{user}" in answer:
            match = re.match(r"/v1\.0/users/([^/]+)/", self.path)
            answer = answer.replace(b"{user}", (match.group(1) if match else "").encode())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read ``requests`` instead of an access log."""


class GraphHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stand_in: GraphStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stand_in = stand_in

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients that refuse the certificate or hang up are expected here."""
