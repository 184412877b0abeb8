"""A TCP proxy in front of a real test server: it records what clients sent, may rewrite what the server
says, and can be cut (an outage) and restored. The STARTTLS-stripping man in the middle and the database
outage are both this proxy. It can also stall: hold every byte, both ways, on connections left open
(a server that stops answering without hanging up).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Self


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target`` from construction until :meth:`close`.

    ``rewrite`` is applied to the server's bytes, a whole number of lines at a time (so a word split
    between two reads is still seen); every byte a client sent is kept for :meth:`sent`.
    """

    def __init__(self, target: tuple[str, int], *, rewrite: Callable[[bytes], bytes] | None = None) -> None:
        self.target = target
        self.rewrite = rewrite
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sent: list[bytes] = []
        self._open: set[socket.socket] = set()
        self._cut = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._accepting = threading.Thread(target=self._accept, name=f"tcp-proxy-{self.port}", daemon=True)
        self._accepting.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def sent(self) -> bytes:
        """Every byte clients sent through the proxy since the last :meth:`clear`, in arrival order."""
        with self._lock:
            return b"".join(self._sent)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    def cut(self) -> None:
        """The server goes away: open connections break, new ones are closed at once."""
        self._cut = True
        self._drop_all()

    def restore(self) -> None:
        self._cut = False

    def stall(self) -> None:
        """Hold every byte from now on, both ways (still recorded for :meth:`sent`); connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        """Pass on what was held, and everything after it."""
        self._flowing.set()

    def close(self) -> None:
        # Closing alone does not wake the thread blocked in accept() (it then waited out the 5 s join
        # below, for each proxy); shutting the listener down first does, at once.
        _shut(self._listener)
        self._flowing.set()  # a held forward finds its sockets shut and ends
        self._drop_all()
        self._accepting.join(timeout=5)

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _shut(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            if self._cut:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            threading.Thread(target=self._client_to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    self._sent.append(data)
                self._flowing.wait()
                server.sendall(data)
        except OSError:
            pass
        finally:
            self._close_both(client, server)

    def _server_to_client(self, server: socket.socket, client: socket.socket) -> None:
        pending = b""
        try:
            while data := server.recv(65536):
                self._flowing.wait()
                if self.rewrite is None:
                    client.sendall(data)
                    continue
                pending += data
                lines, _, pending = pending.rpartition(b"\n")
                if lines:
                    client.sendall(self.rewrite(lines + b"\n"))
            if pending:
                client.sendall(pending)
        except OSError:
            pass
        finally:
            self._close_both(client, server)

    def _close_both(self, first: socket.socket, second: socket.socket) -> None:
        with self._lock:
            self._open.difference_update((first, second))
        _shut(first)
        _shut(second)


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()
