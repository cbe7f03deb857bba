"""Stuck clients: one that takes no data for ``send_timeout`` seconds is
disconnected, and never delays the clients that do read."""

from __future__ import annotations

import re
import selectors
import time
from pathlib import Path

import requests

from tests.support.clients import AUTH
from tests.support.raw_http import open_stream_socket, raw_response
from tests.support.servers import open_connections, pywsgi_server, wait_until

STUCK = READERS = 300
MESSAGES = 300
PAYLOAD = "x" * 2000
_ID = re.compile(rb"\nid: (\d+)\nevent: bulk\n")  # messages, not the opening id


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def test_stuck_clients_are_dropped_and_readers_get_everything() -> None:
    server = pywsgi_server(
        server_args=("--send-timeout", "1"),
        PUSH_TEST_HEARTBEAT="0.5",
        PUSH_TEST_MAX_CONNECTIONS="1000",
    )
    try:
        assert server.process is not None
        # Never read from, with a tiny receive window.
        stuck = [
            open_stream_socket(server.url, "/push/sse/slow", receive_buffer=4096)
            for _ in range(STUCK)
        ]
        readers = [open_stream_socket(server.url, "/push/sse/slow") for _ in range(READERS)]
        wait_until(lambda: open_connections(server, "sse") == STUCK + READERS, 10, "subscribers")
        rss_before = rss_kib(server.process.pid)

        selector = selectors.DefaultSelector()
        received = {sock: b"" for sock in readers}
        for sock in readers:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        with requests.Session() as session:
            for _ in range(MESSAGES):
                session.post(
                    f"{server.url}/push/publish/slow",
                    json={"data": PAYLOAD, "event": "bulk"},
                    headers=AUTH,
                    timeout=5,
                )
                for key, _ in selector.select(timeout=0):
                    received[key.fileobj] += key.fileobj.recv(1 << 20)  # type: ignore[union-attr,index]
        deadline = time.monotonic() + 30
        while any(f"\nid: {MESSAGES}\n".encode() not in data for data in received.values()):
            assert time.monotonic() < deadline, "readers did not get every message"
            for key, _ in selector.select(timeout=1):
                received[key.fileobj] += key.fileobj.recv(1 << 20)  # type: ignore[union-attr,index]

        for data in received.values():
            assert [int(i) for i in _ID.findall(data)] == list(range(1, MESSAGES + 1))
        # The stuck ones are gone after the send timeout; the readers stay.
        wait_until(lambda: open_connections(server, "sse") == READERS, 15, "stuck clients dropped")
        counters = requests.get(f"{server.url}/push/stats", headers=AUTH, timeout=5).json()
        assert counters["slow_clients_dropped"] == STUCK
        assert rss_kib(server.process.pid) - rss_before < 64 * 1024
        # Dropping a stuck client is routine, not an error to log.
        assert server.tracebacks() == []
        for sock in stuck + readers:
            sock.close()
    finally:
        server.stop()


def test_a_body_that_never_arrives_is_answered_after_the_timeout() -> None:
    """The socket timeout covers reads too: a publisher that declares a body
    and stops sending holds its greenlet for ``send_timeout``, not forever."""
    server = pywsgi_server(server_args=("--send-timeout", "1"))
    try:
        started = time.monotonic()
        answer = raw_response(
            server.url,
            b"POST /push/publish/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + AUTH["Authorization"].split()[1].encode()
            + b"\r\nContent-Length: 10\r\n\r\n{",
            timeout=10,
        )
        assert answer.startswith(b"HTTP/1.1 400") and b"ended early" in answer
        assert time.monotonic() - started < 5
    finally:
        server.stop()
