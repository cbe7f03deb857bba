"""Clients that go away are noticed (streams by the next heartbeat, parked
long polls at once under our servers) and leave nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.raw_http import connect, open_stream_socket
from tests.support.servers import (
    ServerProcess,
    free_port,
    gunicorn_server,
    open_connections,
    pywsgi_server,
    server_state,
    wait_until,
)

STREAMS = 200
POLLS = 50
PUSH_WORKER = "wsgi_push.gunicorn.GeventWorker"


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


@pytest.fixture(scope="module", params=["pywsgi", "gunicorn"])
def fifty_slots(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A server with ``max_connections=50`` and long polls held for 25 s."""
    settings = {"PUSH_TEST_MAX_CONNECTIONS": str(POLLS), "PUSH_TEST_POLL_TIMEOUT": "25"}
    if request.param == "pywsgi":
        with pywsgi_server(**settings) as process:
            yield process
    else:
        with gunicorn_server(free_port(), worker_class=PUSH_WORKER, **settings) as process:
            yield process


def test_a_long_poll_whose_client_left_frees_its_slot_at_once(fifty_slots: ServerProcess) -> None:
    """50 parked long polls whose clients close: every slot is free again
    within a second, not after the 25 s poll timeout, and polling works."""
    request = b"GET /push/poll/left HTTP/1.1\r\nHost: x\r\n\r\n"
    sockets = [connect(fifty_slots.url) for _ in range(POLLS)]
    for sock in sockets:
        sock.sendall(request)
    try:
        wait_until(lambda: open_connections(fifty_slots, "poll") == POLLS, 10, "polls to park")
    finally:
        for sock in sockets:
            sock.close()
    closed = time.monotonic()
    wait_until(lambda: open_connections(fifty_slots, "poll") == 0, 5, "slots to be freed")
    assert time.monotonic() - closed < 1.0
    answer = requests.get(f"{fifty_slots.url}/push/poll/left?timeout=0", timeout=5)
    assert answer.status_code == 200
    assert fifty_slots.tracebacks("/wsgi_push/") == []
