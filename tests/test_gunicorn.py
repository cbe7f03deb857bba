"""Smoke test under ``gunicorn -k gevent``: every transport works there too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.clients import TRANSPORTS, items, publish, take
from tests.support.raw_http import connect
from tests.support.servers import (
    ServerProcess,
    free_port,
    gunicorn_server,
    open_connections,
    server_state,
    wait_until,
)

PUSH_WORKER = "wsgi_push.gunicorn.GeventWorker"


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[ServerProcess]:
    with gunicorn_server(free_port(), PUSH_TEST_HEARTBEAT="0.5") as process:
        yield process


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_delivers_under_gunicorn(gunicorn: ServerProcess, transport: str) -> None:
    channel = f"gunicorn-{transport}"
    first = publish(gunicorn.url, channel, {"n": 1})
    source = items(gunicorn.url, transport, channel, 0)
    assert take(source, 1) == [{"id": first, "event": "message", "data": {"n": 1}}]
    source = items(gunicorn.url, transport, channel, first)
    publisher = threading.Thread(
        target=lambda: (
            _wait_for_subscriber(gunicorn, transport),
            publish(gunicorn.url, channel, {"n": 2}),
        )
    )
    publisher.start()
    assert take(source, 1) == [{"id": first + 1, "event": "message", "data": {"n": 2}}]
    publisher.join(10)


def _wait_for_subscriber(server: ServerProcess, transport: str) -> None:
    wait_until(lambda: open_connections(server, transport) >= 1, 5, "a subscriber")


def test_wrapped_app_under_gunicorn(gunicorn: ServerProcess) -> None:
    response = requests.get(f"{gunicorn.url}/app/stream", timeout=5)
    assert response.status_code == 200 and response.text == "one\ntwo\nthree\n"


def test_graceful_stop(gunicorn: ServerProcess) -> None:
    """SIGTERM with a stream open: gunicorn exits by itself within its graceful timeout."""
    with requests.get(f"{gunicorn.url}/push/sse/bye", stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert gunicorn.stop(timeout=15) == 0


def test_the_push_worker_applies_its_socket_timeout() -> None:
    """gunicorn's gevent worker makes each socket blocking after the push
    worker tuned it; the send timeout must still apply to every request."""
    with gunicorn_server(free_port(), worker_class=PUSH_WORKER) as server:
        assert server_state(server)["socket_timeout"] == 30.0


def test_an_idle_kept_alive_connection_ends_quietly_past_the_send_timeout() -> None:
    """With ``--keep-alive`` over the 30 s send timeout, the socket timeout
    grows past it: gunicorn's keep-alive timer, not a socket timeout (and its
    traceback), ends an idle connection."""
    keep_alive = 31
    argv = ("--keep-alive", str(keep_alive))
    with gunicorn_server(free_port(), worker_class=PUSH_WORKER, server_args=argv) as server:
        assert server_state(server)["socket_timeout"] == keep_alive + 1
        with connect(server.url, timeout=keep_alive + 10) as sock:
            sock.sendall(b"GET /app/stream HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            while sock.recv(65536):  # the answer, then the close
                pass
            idle = time.monotonic() - started
        assert keep_alive - 1 < idle < keep_alive + 5, idle
        assert server.tracebacks() == []
