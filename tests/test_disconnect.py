"""Clients that go away are noticed by the next heartbeat and leave nothing behind."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from tests.support.servers import ServerProcess, server_state, wait_until

STREAMS = 200


def open_stream(base_url: str, path: str) -> socket.socket:
    """A raw subscriber socket, returned once the response headers arrived."""
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=5)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "server closed the stream"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200")
    return sock


@pytest.mark.parametrize("transport", ["sse", "stream"])
def test_dropped_streams_release_everything(server: ServerProcess, transport: str) -> None:
    channel = f"drop-{transport}"
    baseline = server_state(server, channel)
    assert baseline["subscribers"] == 0
    sockets = [open_stream(server.url, f"/push/{transport}/{channel}") for _ in range(STREAMS)]
    try:
        held = server_state(server, channel)
        assert held["subscribers"] == STREAMS
        assert held["connections"][transport] == STREAMS
        assert held["greenlets"] >= baseline["greenlets"] + STREAMS
    finally:
        for sock in sockets:
            sock.close()

    def released() -> bool:
        state = server_state(server, channel)
        return (
            state["subscribers"] == 0
            and state["connections"].get(transport, 0) == 0
            and state["greenlets"] <= baseline["greenlets"] + 2
        )

    # Heartbeats every 0.5 s: the second failed write at the latest ends each stream.
    wait_until(released, 10, "dropped streams to be released")
