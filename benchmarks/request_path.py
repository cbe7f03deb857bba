"""Cost of one HTTP request through the project's own server, in-process.

``python -m benchmarks.request_path [--requests 2000] [--server serve|plain]``

A :func:`wsgi_push.make_server` (or a plain ``pywsgi.WSGIServer``) and one
keep-alive client run in one process on loopback; the client alternates an
HTTP publish and a long poll that is answered at once (the request mix of
many channels and of long polling). Prints the CPU time per request. Under
``valgrind --tool=callgrind`` run it twice with different ``--requests`` and
divide the difference in instructions by the difference in requests: startup
cancels out, and instruction counts don't care how loaded the machine is.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import socket  # noqa: E402
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
POLL = (
    "GET /push/poll/c?since={since}&timeout=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
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


def run(requests: int, plain: bool) -> float:
    if plain:
        server = pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None)
    else:
        server = make_server(app, "127.0.0.1", 0, access_log=False)
    server.start()
    sock = socket.create_connection(("127.0.0.1", server.server_port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = bytearray()
    last = 0
    started = time.process_time()
    for number in range(requests):
        if number % 2 == 0:
            sock.sendall(PUBLISH)
            body = read_response(sock, pending)
            last = int(body.split(b'"id":', 1)[1].strip(b" }"))
        else:
            sock.sendall(POLL.format(since=last - 1).encode())
            read_response(sock, pending)
    elapsed = time.process_time() - started
    sock.close()
    server.stop(timeout=1)
    return elapsed / requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_path", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--server", choices=("serve", "plain"), default="serve")
    config = parser.parse_args(argv)
    per_request = run(config.requests, config.server == "plain")
    print(f"{per_request * 1e6:.1f} us CPU per request ({config.server}, client included)")


if __name__ == "__main__":
    main()
