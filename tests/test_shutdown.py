"""Graceful shutdown: on SIGTERM, open streams and long polls end cleanly and
at once, so clients reconnect to a live process; the process exits by itself."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import requests
from werkzeug.test import Client

from tests.support.servers import (
    ServerProcess,
    free_port,
    gunicorn_server,
    open_connections,
    pywsgi_server,
    wait_until,
)
from wsgi_push import MemoryBroker, PushMiddleware


def read_until_end(response: requests.Response, ended: list[float]) -> None:
    """Consume a stream; record when it ended cleanly (chunked terminator)."""
    for _ in response.iter_content(chunk_size=None):
        pass
    ended.append(time.monotonic())


def hold_streams(server: ServerProcess) -> tuple[list[threading.Thread], list[float]]:
    ended: list[float] = []
    readers = []
    for transport in ("sse", "stream"):
        response = requests.get(f"{server.url}/push/{transport}/bye", stream=True, timeout=30)
        assert response.status_code == 200
        reader = threading.Thread(target=read_until_end, args=(response, ended))
        reader.start()
        readers.append(reader)
    return readers, ended


def test_pywsgi_sigterm_ends_streams_and_polls_at_once() -> None:
    server = pywsgi_server(PUSH_TEST_HEARTBEAT="30", PUSH_TEST_POLL_TIMEOUT="30")
    try:
        readers, ended = hold_streams(server)
        polls: list[requests.Response] = []
        poller = threading.Thread(
            target=lambda: polls.append(
                requests.get(f"{server.url}/push/poll/bye?since=0", timeout=30)
            )
        )
        poller.start()
        wait_until(lambda: open_connections(server) == 3, 5, "three open connections")
        signalled = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        for thread in [*readers, poller]:
            thread.join(5)
        assert len(ended) == 2 and max(ended) - signalled < 2.0
        assert polls[0].status_code == 200 and polls[0].json()["messages"] == []
        assert server.process.wait(10) == 0
    finally:
        server.stop()


@pytest.fixture
def push_worker_gunicorn() -> ServerProcess:
    return gunicorn_server(
        free_port(), worker_class="wsgi_push.gunicorn.GeventWorker", PUSH_TEST_HEARTBEAT="30"
    )


def test_gunicorn_worker_ends_streams_before_the_graceful_timeout(
    push_worker_gunicorn: ServerProcess,
) -> None:
    """The worker drains push connections as soon as it stops accepting: the
    streams end cleanly long before gunicorn's 5 s graceful timeout."""
    server = push_worker_gunicorn
    try:
        readers, ended = hold_streams(server)
        wait_until(lambda: open_connections(server) == 2, 5, "two open streams")
        signalled = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(10)
        assert len(ended) == 2 and max(ended) - signalled < 3.5
        assert server.process.wait(10) == 0
    finally:
        server.stop()


def test_requests_during_drain_end_at_once_with_connection_close() -> None:
    """Unit: a drained middleware answers subscribers with a finished stream."""
    middleware = PushMiddleware(lambda e, s: [], broker=MemoryBroker())
    middleware.drain()
    client = Client(middleware)
    sse = client.get("/push/sse/x")
    assert sse.status_code == 200 and sse.data == b"retry: 2000\n\n"
    assert sse.headers["Connection"] == "close"
    poll = client.get("/push/poll/x?since=0&timeout=20")
    assert poll.json == {"channel": "x", "messages": [], "last_id": 0, "gap": None}
