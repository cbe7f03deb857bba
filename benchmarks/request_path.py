"""Cost of one HTTP request through the project's own server, in-process.

``python -m benchmarks.request_path [--requests 2000] [--server serve|plain]
[--mix answered|parked|reconnect]``

A :func:`wsgi_push.make_server` (or a plain ``pywsgi.WSGIServer``) and
keep-alive clients run in one process on loopback. ``answered`` (the
default): one client alternates an HTTP publish and a long poll that is
answered at once (the request mix of many channels). ``parked``: a long poll
waits until a second client publishes, then polls again (a long-poll
client's cycle: park, wake, answer, re-poll). ``reconnect``: an SSE
subscriber connects with ``Last-Event-ID``, takes the message it missed and
is reset, and the next publish finds it gone (a reconnect storm's work per
client). Prints the CPU time per request (an SSE open counts as one). Under
``valgrind --tool=callgrind`` run it twice with different ``--requests`` and
divide the difference in instructions by the difference in requests: startup
cancels out, and instruction counts don't care how loaded the machine is.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

from gevent import pywsgi  # noqa: E402

from benchmarks.apps.wsgi_push_app import PUBLISH_TOKEN, app  # noqa: E402
from wsgi_push.server import make_server  # noqa: E402

PUBLISH = (
    b"POST /push/publish/c HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
    b"Accept: */*\r\nAuthorization: Bearer " + PUBLISH_TOKEN.encode() + b"\r\n"
    b"Content-Type: application/json\r\nContent-Length: 11\r\n\r\n"
    b'{"data": 1}'
)
SSE = (
    "GET /push/sse/c HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
    "Accept: text/event-stream\r\nLast-Event-ID: {last_event_id}\r\n\r\n"
)
POLL = (
    "GET /push/poll/c?since={since}&timeout={timeout} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "User-Agent: bench\r\nAccept: */*\r\n\r\n"
)


def read_response(sock: socket.socket, pending: bytearray) -> bytes:
    """One Content-Length response from ``sock`` (what is left stays in ``pending``)."""
    while True:
        end = pending.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(pending[:end]).lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            total = end + 4 + length
            if len(pending) >= total:
                body = bytes(pending[end + 4 : total])
                del pending[:total]
                return body
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed")
        pending += chunk


def run(requests: int, plain: bool, mix: str = "answered") -> float:
    if plain:
        server = pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None)
    else:
        server = make_server(app, "127.0.0.1", 0, access_log=False)
    server.start()
    port = server.server_port
    sock = connect(port)
    pending = bytearray()
    poller, poll_pending = connect(port) if mix == "parked" else sock, bytearray()
    last = 0
    if mix == "parked":
        poller.sendall(POLL.format(since=last, timeout=30).encode())
    started = time.process_time()
    for number in range(requests):
        if number % 2 == 0:
            sock.sendall(PUBLISH)
            body = read_response(sock, pending)
            last = int(body.split(b'"id":', 1)[1].strip(b" }"))
        elif mix == "parked":  # answered by the publish just made
            if b'"last_id":%d' % last not in read_response(poller, poll_pending):
                raise RuntimeError("the parked long poll missed the publish")
            poller.sendall(POLL.format(since=last, timeout=30).encode())
        elif mix == "reconnect":  # the next publish finds it gone
            reconnect(port, last)
        else:
            sock.sendall(POLL.format(since=last - 1, timeout=0).encode())
            read_response(sock, pending)
    elapsed = time.process_time() - started
    sock.close()
    poller.close()
    server.stop(timeout=1)
    return elapsed / requests


def reconnect(port: int, last: int) -> None:
    """Open an SSE stream resuming before ``last``, read ``last`` replayed,
    then reset the connection (SO_LINGER 0), as a client cut off does."""
    stream = connect(port)
    stream.sendall(SSE.format(last_event_id=last - 1).encode())
    received = bytearray()
    while b"id: %d\n" % last not in received:
        chunk = stream.recv(65536)
        if not chunk:
            raise ConnectionError("server closed")
        received += chunk
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close()


def connect(port: int) -> socket.socket:
    # Not create_connection(): its name lookup runs in gevent's thread pool.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect(("127.0.0.1", port))
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_path", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="at least 2 (default 2000)")
    parser.add_argument("--server", choices=("serve", "plain"), default="serve")
    parser.add_argument("--mix", choices=("answered", "parked", "reconnect"), default="answered")
    config = parser.parse_args(argv)
    if config.requests < 2:  # one publish and one of the mix's requests at least
        parser.error("--requests must be at least 2")
    per_request = run(config.requests, config.server == "plain", config.mix)
    label = f"{config.server}, {config.mix}, client included"
    print(f"{per_request * 1e6:.1f} us CPU per request ({label})")


if __name__ == "__main__":
    main()
