"""Clients that go away are noticed by the next heartbeat and leave nothing behind."""

from __future__ import annotations

import pytest

from tests.support.raw_http import open_stream_socket
from tests.support.servers import ServerProcess, server_state, wait_until

STREAMS = 200


@pytest.mark.parametrize("transport", ["sse", "stream"])
def test_dropped_streams_release_everything(server: ServerProcess, transport: str) -> None:
    channel = f"drop-{transport}"
    baseline = server_state(server, channel)
    assert baseline["subscribers"] == 0
    sockets = [
        open_stream_socket(server.url, f"/push/{transport}/{channel}") for _ in range(STREAMS)
    ]
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
