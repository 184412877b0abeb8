"""A man in the middle for tests: a TCP proxy that strips STARTTLS/STLS from what the server offers.

It forwards to a real server (Dovecot, aiosmtpd) and rewrites the capability words in the server's
lines, as a downgrading attacker does, and records every byte the client sent, so a test can prove
that no credential crossed the wire in clear.
"""

from __future__ import annotations

import re
import socket
import threading
from contextlib import suppress

#: The capability words a downgrade removes: IMAP's and SMTP's STARTTLS, POP3's STLS. Rewritten to an
#: unknown word rather than cut, so the IMAP capability list and the EHLO's 250- lines stay well-formed.
_UPGRADE = re.compile(rb"\b(?:STARTTLS|STLS)\b")


class StrippingProxy:
    """Listens on 127.0.0.1 and forwards each connection to ``target``, stripping the TLS upgrade."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sent: list[bytes] = []
        self._open: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, name=f"strip-proxy-{self.port}", daemon=True)
        self._accepting.start()

    def sent(self) -> bytes:
        """Every byte clients sent through the proxy since the last :meth:`clear`, in arrival order."""
        with self._lock:
            return b"".join(self._sent)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    def close(self) -> None:
        with suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.close()
        self._accepting.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.extend((client, server))
            threading.Thread(target=self._client_to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    self._sent.append(data)
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close_both(client, server)

    def _server_to_client(self, server: socket.socket, client: socket.socket) -> None:
        pending = b""
        try:
            while data := server.recv(65536):
                # Whole lines only, so a capability word split between two reads is still seen.
                pending += data
                lines, _, pending = pending.rpartition(b"\n")
                if lines:
                    client.sendall(_UPGRADE.sub(b"XSTRIPPED", lines + b"\n"))
            if pending:
                client.sendall(pending)
        except OSError:
            pass
        finally:
            _close_both(client, server)


def _close_both(first: socket.socket, second: socket.socket) -> None:
    for sock in (first, second):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            sock.close()
