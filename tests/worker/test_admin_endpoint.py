"""The admin endpoint under abuse: idle and half-sent clients, floods of connections, bodies before the token.

The endpoint is served by the worker's ``AdminServer`` on a real loopback socket; these tests talk
to it with raw sockets, as a hostile client would, with a short client timeout so that they stay fast.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from postroom.core.worker.admin_http import RELOAD_PATH, AdminServer

TOKEN = "right-token"
CLIENT_TIMEOUT = 0.5
MAX_CLIENTS = 4


@pytest.fixture
def admin() -> Iterator[tuple[AdminServer, list[int]]]:
    yield from _serve(CLIENT_TIMEOUT)


@pytest.fixture
def patient_admin() -> Iterator[tuple[AdminServer, list[int]]]:
    """An endpoint whose clients may take long: its cap, not its timeout, is what a flood meets."""
    yield from _serve(30.0)


def _serve(client_timeout: float) -> Iterator[tuple[AdminServer, list[int]]]:
    reloads: list[int] = []

    def reload() -> int:
        reloads.append(1)
        return len(reloads)

    server = AdminServer(
        "127.0.0.1",
        0,
        check_token=lambda offered: offered == TOKEN,
        reload=reload,
        health=lambda: {"status": "ok"},
        client_timeout=client_timeout,
        max_clients=MAX_CLIENTS,
    )
    server.start()
    try:
        yield server, reloads
    finally:
        server.stop()


def _connect(server: AdminServer) -> socket.socket:
    connection = socket.create_connection(server.address, timeout=10)
    return connection


def _answer(connection: socket.socket) -> tuple[int, dict[str, object]]:
    """Read a whole HTTP/1.0 answer (the server closes the connection after it)."""
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _request(server: AdminServer, raw: bytes) -> tuple[int, dict[str, object]]:
    with _connect(server) as connection:
        connection.sendall(raw)
        return _answer(connection)


def _wait_until(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_an_idle_client_is_disconnected_instead_of_holding_a_thread(
    admin: tuple[AdminServer, list[int]],
) -> None:
    server, _ = admin
    with _connect(server) as connection:
        connection.sendall(b"POST " + RELOAD_PATH.encode() + b" HTTP/1.0\r\nsessionId: ")  # and then nothing
        assert connection.recv(65536) == b"", "the server closes a connection whose request never ends"


def test_a_client_that_trickles_its_request_is_cut_off_after_the_timeout(
    admin: tuple[AdminServer, list[int]],
) -> None:
    server, _ = admin
    started = time.monotonic()
    with _connect(server) as connection:
        connection.settimeout(0.05)
        cut_off = False
        # One header byte every 50 ms never leaves the socket quiet for the timeout (0.5 s).
        for byte in b"GET /health HTTP/1.0\r\n" + b"X-Slow: " + b"a" * 400:
            try:
                connection.send(bytes([byte]))
                if connection.recv(1) == b"":
                    cut_off = True
                    break
            except TimeoutError:
                continue
            except OSError:
                cut_off = True
                break
    assert cut_off, "a trickled request must not hold its thread beyond the timeout"
    assert time.monotonic() - started < 10


def test_a_flood_of_half_sent_requests_uses_at_most_the_thread_cap_and_the_rest_are_told_busy(
    patient_admin: tuple[AdminServer, list[int]],
) -> None:
    server, _ = patient_admin
    before = threading.active_count()
    held = [_connect(server) for _ in range(MAX_CLIENTS)]
    try:
        for connection in held:
            connection.sendall(b"GET /health HTTP/1.0\r\n")  # headers never finished
        _wait_until(lambda: threading.active_count() >= before + 2 * MAX_CLIENTS)  # handler + its deadline
        extra = [_connect(server) for _ in range(3 * MAX_CLIENTS)]
        try:
            answers = [_answer(connection) for connection in extra]
        finally:
            for connection in extra:
                connection.close()
        assert threading.active_count() <= before + 2 * MAX_CLIENTS
        assert all(status == 503 for status, _ in answers)
        assert answers[0][1]["message"] == "Too many requests at once; try again."
    finally:
        for connection in held:
            connection.close()
    # The held clients went away: their threads end and the endpoint serves again.
    _wait_until(lambda: threading.active_count() <= before)
    assert _request(server, b"GET /health HTTP/1.0\r\n\r\n") == (200, {"status": "ok"})


def test_a_wrong_token_is_refused_without_waiting_for_the_announced_body(
    admin: tuple[AdminServer, list[int]],
) -> None:
    server, reloads = admin
    with _connect(server) as connection:
        connection.sendall(
            b"POST " + RELOAD_PATH.encode() + b" HTTP/1.0\r\nsessionId: wrong\r\nContent-Length: 100000000\r\n\r\n"
        )
        connection.settimeout(CLIENT_TIMEOUT / 2)  # well before the client timeout could end it
        status, document = _answer(connection)
    assert status == 401
    assert document["message"] == "The sessionId is missing or wrong."
    assert reloads == []


def test_the_right_token_reloads_with_a_body_the_endpoint_never_reads(
    admin: tuple[AdminServer, list[int]],
) -> None:
    server, reloads = admin
    status, document = _request(
        server,
        b"POST " + RELOAD_PATH.encode() + b" HTTP/1.0\r\nsessionId: right-token\r\nContent-Length: 2\r\n\r\n{}",
    )
    assert (status, document["status"], reloads) == (200, "ok", [1])
