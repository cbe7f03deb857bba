"""Serving a push app under pywsgi (``wsgi_push/server.py``): the socket
options a push connection needs, checked on real loopback connections."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import requests
from gevent import socket as gevent_socket

from tests.support.servers import pywsgi_server
from wsgi_push import PushMiddleware, make_server
from wsgi_push.server import (
    DEFAULT_BACKLOG,
    DEFAULT_SEND_BUFFER,
    FULL_COLLECTION_SPACING,
    PushHandler,
    PushServer,
    PushSocket,
)


@pytest.fixture
def connected_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
        yield accepted, client
        accepted.close()
        client.close()


def test_tune_socket_turns_nagle_off_bounds_the_buffer_and_sets_the_timeout(
    connected_pair: tuple[socket.socket, socket.socket],
) -> None:
    accepted, _ = connected_pair
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    PushServer.tune_socket(accepted, send_timeout=7.0)
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    # Linux doubles the value asked for (bookkeeping overhead).
    assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 2 * DEFAULT_SEND_BUFFER
    assert accepted.gettimeout() == 7.0


def test_a_push_socket_closed_twice_stays_quiet(
    connected_pair: tuple[socket.socket, socket.socket],
) -> None:
    """pywsgi closes a connection's socket, then the server closes it again."""
    accepted, client = connected_pair
    sock = PushSocket(fileno=accepted.detach())
    sock.close()
    sock.close()
    assert client.recv(1) == b""  # the connection really is closed


def test_every_accepted_connection_is_tuned() -> None:
    """A live in-process PushServer: the handler sees a tuned socket."""
    seen: list[tuple[int, float | None]] = []

    class RecordingHandler(PushHandler):
        def handle(self) -> Any:
            options = self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            seen.append((options, self.socket.gettimeout()))
            return super().handle()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = make_server(PushMiddleware(app), port=0, send_timeout=3.0, access_log=False)
    server.handler_class = RecordingHandler
    server.start()
    try:
        # A gevent socket: the server runs in this thread's event loop.
        address = ("127.0.0.1", server.server_port)
        with gevent_socket.create_connection(address, timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with gevent.Timeout(5):
                while client.recv(4096):
                    pass
    finally:
        server.stop(timeout=1)
    assert len(seen) == 1 and seen[0][0] != 0 and seen[0][1] == 3.0
    assert server.backlog == DEFAULT_BACKLOG


def test_a_push_server_spaces_out_full_garbage_collections() -> None:
    """Python's default (a full pass every 10 middle ones) would stop a
    server holding 10,000 connections for ~0.5 s every ~2,500 reconnects;
    the young generations keep their default pace."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        server = make_server(PushMiddleware(lambda environ, start_response: []), port=0)
        server.close()
        assert gc.get_threshold() == (700, 10, FULL_COLLECTION_SPACING)
    finally:
        gc.set_threshold(*before)


def test_python_m_wsgi_push_serves_on_the_port_it_prints() -> None:
    with pywsgi_server() as server:
        response = requests.get(f"{server.url}/app/stream", timeout=5)
        assert response.status_code == 200 and response.text == "one\ntwo\nthree\n"
