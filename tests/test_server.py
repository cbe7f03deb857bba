"""Serving a push app under pywsgi (``wsgi_push/server.py``): the socket
options a push connection needs, checked on real loopback connections."""

from __future__ import annotations

import gc
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
import requests
from gevent import socket as gevent_socket
from gevent import ssl as gevent_ssl

from tests.support.servers import pywsgi_server
from wsgi_push import MemoryBroker, PushMiddleware, make_server
from wsgi_push.nowait import WRITE_NOWAIT, WROTE_ALL, WROTE_NOTHING
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


def _dechunk(raw: bytes, ended: bool = True) -> bytes:
    """An HTTP/1.1 chunked body, decoded strictly (a torn chunk fails); of a
    body still going (``ended=False``), its complete chunks."""
    body, rest = b"", raw
    while True:
        size_line, crlf, after = rest.partition(b"\r\n")
        if not crlf or (not ended and len(after) < int(size_line, 16) + 2):
            assert not ended, "body cut short"
            return body
        size, rest = int(size_line, 16), after
        if size == 0:
            assert rest == b"\r\n"
            return body
        assert rest[size : size + 2] == b"\r\n", "chunk not followed by CRLF"
        body, rest = body + rest[:size], rest[size + 2 :]


def _slow_reader(port: int) -> gevent_socket.socket:
    """A client connected to ``port`` with a tiny receive window: the
    server's socket fills up soon when it reads nothing."""
    client = gevent_socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(5)
    client.connect(("127.0.0.1", port))
    return client


def test_write_nowait_keeps_the_stream_whole_when_the_socket_fills_up() -> None:
    """The hook that writes a parked stream's heartbeats never blocks: once
    the client stops reading it refuses, and a chunk the socket took only in
    part is finished before the body's next chunk."""
    piece = b"x" * 1000
    taken: list[bytes] = []
    full = gevent.event.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write_nowait = environ[WRITE_NOWAIT]
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"

        def fill() -> None:  # another greenlet, while this one is between chunks
            while write_nowait(piece) == WROTE_ALL:
                taken.append(piece)
            full.set()

        gevent.spawn(fill).join(timeout=5)
        yield b"tail"

    server = make_server(app, port=0, access_log=False)
    server.start()
    try:
        client = _slow_reader(server.server_port)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert full.wait(timeout=5)  # the client reads nothing until the socket is full
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        client.close()
    finally:
        server.stop(timeout=1)
    head, _, raw_body = received.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    body = _dechunk(raw_body)
    # The refused piece went out whole (taken in part) or not at all.
    assert body in (b"first" + piece * n + b"tail" for n in (len(taken), len(taken) + 1))
    assert taken


def test_a_client_gone_under_a_write_from_the_hub_costs_the_stream_no_further_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client resets its connection; the hub's write finds out first. The
    stream's own next write fails at once with the same error, without a
    system call, and the stream ends quietly."""
    answers: list[int] = []
    sends_after: list[bytes] = []
    ended = gevent.event.Event()
    reset = gevent.event.Event()
    real_send = PushSocket.send

    def counting_send(self: PushSocket, data: Any, flags: int = 0) -> int:
        if answers:
            sends_after.append(bytes(data))
        sent: int = real_send(self, data, flags)
        return sent

    monkeypatch.setattr(PushSocket, "send", counting_send)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write_nowait = environ[WRITE_NOWAIT]
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield b"first"
            assert reset.wait(timeout=5)
            answers.append(write_nowait(b"news"))
            yield b"more"
        finally:
            ended.set()

    server = make_server(app, port=0, access_log=False)
    server.start()
    try:
        client = gevent_socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"first" in client.recv(65536)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset
        reset.set()
        assert ended.wait(timeout=5)
    finally:
        server.stop(timeout=1)
    assert answers == [WROTE_NOTHING]
    assert sends_after == []


def test_news_written_from_the_hub_keeps_a_filling_stream_whole_and_in_order() -> None:
    """A publish writes a parked stream's news from the hub; a client that
    reads nothing fills its socket, so those writes go whole, in part (the
    rest goes first with the next write) or not at all (the stream's
    greenlet writes, blocking). Every message still arrives once, in order,
    on a well-formed chunked stream."""
    broker = MemoryBroker()
    server = make_server(PushMiddleware(lambda environ, start_response: [], broker=broker),
                         port=0, access_log=False)  # fmt: skip
    server.start()
    count, payload = 300, "x" * 3000
    try:
        client = _slow_reader(server.server_port)
        client.sendall(b"GET /push/sse/burst HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:  # the head and the opening: it is parked
            received += client.recv(65536)
        with gevent.Timeout(20):
            while not broker.signals.has_waiters("burst"):
                gevent.sleep(0.01)
            for number in range(count):
                broker.publish("burst", payload)
                gevent.idle()  # the hub writes it now (or the stream's greenlet does)
                if number % 4 == 3:  # a reader that keeps falling behind
                    received += client.recv(4096)
            last = f"id: {count}\n".encode()
            while last not in received or not received.endswith(b"\n\n\r\n"):  # its chunk whole
                received += client.recv(65536)
        client.close()
    finally:
        server.stop(timeout=1)
    head, _, raw_body = received.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    events = _dechunk(raw_body, ended=False).split(b"\n\n")
    ids = [
        int(line[4:]) for event in events for line in event.split(b"\n") if line.startswith(b"id: ")
    ]
    assert ids[1:] == list(range(1, count + 1))  # after the opening's id
    assert all(payload.encode() in event for event in events if b"data:" in event)


def _exchange(client: gevent_socket.socket, request: bytes) -> bytes:
    """Send one keep-alive request and read its Content-Length answer."""
    client.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += client.recv(65536)
    return body


@pytest.mark.parametrize("polled_before", [True, False])
def test_a_long_polls_next_request_waits_its_turn_behind_others_ready(
    polled_before: bool,
) -> None:
    """Twenty connections' requests and one long-poll client's re-poll become
    ready together (sent while the server's loop is busy): the re-poll is
    taken after all the others (wsgi_push/repoll.py). The same connection,
    when its last request was not a long poll, is taken among them."""
    order: list[str] = []

    def other(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    push = PushMiddleware(other)

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        order.append(environ["PATH_INFO"])
        return push(environ, start_response)

    server = make_server(recording, port=0, access_log=False)
    server.start()
    address = ("127.0.0.1", server.server_port)
    poll = b"GET /push/poll/c?timeout=0 HTTP/1.1\r\nHost: x\r\n\r\n"
    others = [f"/o{number}" for number in range(21)]

    def request(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    clients = [gevent_socket.create_connection(address, timeout=5) for _ in range(21)]
    try:
        with gevent.Timeout(10):
            for number, client in enumerate(clients):
                _exchange(client, poll if number == 10 and polled_before else request("/o"))
            order.clear()
            for number, client in enumerate(clients):  # no switch: all sent, then read
                client.sendall(poll if number == 10 else request(others[number]))
            for client in clients:
                assert client.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for client in clients:
            client.close()
        server.stop(timeout=1)
    assert sorted(order) == sorted(["/push/poll/c"] + others[:10] + others[11:])
    if polled_before:
        assert order[-1] == "/push/poll/c"
    else:
        assert order.index("/push/poll/c") not in (0, 20)  # among the others, as they came


def test_a_long_poll_client_that_never_comes_back_is_closed_by_the_timeout() -> None:
    """Waiting in turn for a re-poll keeps the idle timeout (the send timeout)."""
    app = PushMiddleware(lambda environ, start_response: [])
    server = make_server(app, port=0, send_timeout=0.3, access_log=False)
    server.start()
    address = ("127.0.0.1", server.server_port)
    try:
        with gevent_socket.create_connection(address, timeout=5) as client:
            _exchange(client, b"GET /push/poll/c?timeout=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            with gevent.Timeout(5):
                assert client.recv(1) == b""  # closed by the server, not by our 5 s bound
            assert not server.handlers
    finally:
        server.stop(timeout=1)


TLS = Path(__file__).parent / "support" / "tls"  # a self-signed pair for 127.0.0.1, tests only


def test_streams_and_long_polls_work_over_tls() -> None:
    """``make_server(..., certfile=, keyfile=)``: the hooks that write to the
    socket itself (heartbeats and news from the hub, re-polls in turn) stay
    off under TLS, where bytes must go through the TLS layer; a stream gets
    its news and a long poll its answer."""
    broker = MemoryBroker()
    app = PushMiddleware(lambda environ, start_response: [], broker=broker)
    server = make_server(app, port=0, access_log=False,
                         certfile=str(TLS / "cert.pem"), keyfile=str(TLS / "key.pem"))  # fmt: skip
    server.start()
    context = gevent_ssl.SSLContext(gevent_ssl.PROTOCOL_TLS_CLIENT)  # gevent's: cooperative
    context.load_verify_locations(cafile=str(TLS / "cert.pem"))
    try:
        with gevent.Timeout(10):
            raw = gevent_socket.create_connection(("127.0.0.1", server.server_port))
            client = context.wrap_socket(raw, server_hostname="127.0.0.1")
            client.sendall(b"GET /push/sse/tls HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"\r\n\r\n" not in received:
                received += client.recv(65536)
            while not broker.signals.has_waiters("tls"):
                gevent.sleep(0.01)
            broker.publish("tls", "secret")
            while b"id: 1\ndata: secret\n" not in received:
                received += client.recv(65536)
            client.close()
            poller = context.wrap_socket(
                gevent_socket.create_connection(("127.0.0.1", server.server_port)),
                server_hostname="127.0.0.1",
            )
            body = _exchange(poller, b"GET /push/poll/tls?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b'"secret"' in body
            body = _exchange(poller, b"GET /push/poll/tls?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b'"secret"' in body  # the same connection, its next request
            poller.close()
    finally:
        server.stop(timeout=1)
    assert b"200 OK" in received.split(b"\r\n", 1)[0]
