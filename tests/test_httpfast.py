"""Request heads parsed by llhttp (the ``speedups`` extra) give the app the
same WSGI environ as pywsgi's own parser: the same raw requests, sent to a
server on each path, get the same answers."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator

import pytest

from tests.support.raw_http import connect, raw_response
from tests.support.servers import ServerProcess
from wsgi_push.httpfast import MAX_BODY, httptools


@pytest.fixture(autouse=True)
def _needs_httptools() -> None:
    """Fail loudly, never skip: without httptools these tests would compare
    pywsgi's parser with itself (`.ci/run` installs it with the dev extra)."""
    if httptools is None:
        pytest.fail("httptools is not installed: pip install -e '.[dev]'", pytrace=False)


APP = "tests.support.environ_app:app"
REQUESTS = [
    b"GET /a%20b/c?x=1&y=%C3%A9 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    # duplicates joined (cookies with "; "), an underscore name dropped, case
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Dup: a\r\nx-dup: b\r\nCookie: a=1\r\nCookie: b=2\r\n"
    b"X_Under: no\r\nACCEPT: */*\r\nConnection: close\r\n\r\n",
    # values: surrounding blanks stripped, inner ones and any byte but CR/LF kept
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Blank:   a  b  \r\nX-Latin: \xe9\x01\r\n"
    b"Connection: close\r\n\r\n",
    # tabs around a value, an empty value, a colon inside one, two content types
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Tab:\tv \t\r\nX-Empty:\r\nX-Colon: a:b: c\r\n"
    b"Content-Type: a/b\r\nContent-Type: c/d\r\nConnection: close\r\n\r\n",
    # a body by Content-Length, and a chunked one
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Connection: close\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    # HTTP/1.0, a custom method, bare LF line ends
    b"GET /old HTTP/1.0\r\nHost: h\r\n\r\n",
    b"PURGE /x HTTP/1.1\nHost: h\nConnection: close\n\n",
    # two requests on one kept-alive connection
    b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    # the fast path hands a connection to pywsgi's reader mid-way (a chunked
    # body), which serves the rest of it
    b"POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nabPOST /2 HTTP/1.1\r\nHost: h\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n"
    b"Connection: close\r\n\r\n",
    # a body larger than the fast path reads whole
    b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
    % (MAX_BODY + 1, b"x" * (MAX_BODY + 1)),
]


def start(pure_python: bool) -> ServerProcess:
    argv = [sys.executable, "-m", "wsgi_push", APP, "--port", "0", "--no-access-log"]
    return ServerProcess(argv, {"WSGI_PUSH_PURE_PYTHON": "1" if pure_python else ""}).start()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with start(pure_python=False) as fast, start(pure_python=True) as stock:
        yield fast, stock


def answers(response: bytes) -> list[dict[str, object]]:
    """The JSON bodies of the responses, one after the other (their Date
    headers differ)."""
    bodies = []
    while response:
        head, _, rest = response.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        bodies.append(json.loads(rest[:length]))
        response = rest[length:]
    return bodies


@pytest.mark.parametrize("request_bytes", REQUESTS)
def test_both_parsers_give_the_app_the_same_environ(
    servers: tuple[ServerProcess, ServerProcess], request_bytes: bytes
) -> None:
    fast, stock = servers
    fast_answers = answers(raw_response(fast.url, request_bytes))
    assert fast_answers, "no answer"
    assert fast_answers == answers(raw_response(stock.url, request_bytes))


@pytest.mark.parametrize(
    "request_bytes",
    [
        # pywsgi's parser drops the rest of a head at a line it can't read
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nBad Name: x\r\nX-After: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Cr: 0\r\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\n0\r\n\r\n",
        b"GET /\r\n\r\n",
    ],
)
def test_heads_llhttp_refuses_are_judged_by_pywsgi_as_before(
    servers: tuple[ServerProcess, ServerProcess], request_bytes: bytes
) -> None:
    fast, stock = servers
    fast_response = raw_response(fast.url, request_bytes)
    stock_response = raw_response(stock.url, request_bytes)
    assert fast_response.split(b"\r\n", 1)[0] == stock_response.split(b"\r\n", 1)[0]
    if fast_response.startswith(b"HTTP/1.1 200"):
        assert answers(fast_response) == answers(stock_response)
    assert fast.tracebacks() == []


def test_a_body_sent_after_its_head_is_waited_for(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    """Clients often send the head and the body in separate writes: the
    fast path reads on until the declared length is in."""
    fast, stock = servers
    head = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    results = []
    for server in (fast, stock):
        with connect(server.url) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(head)
            sock.sendall(b"he")
            sock.sendall(b"llo")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        results.append(answers(b"".join(chunks)))
    assert results[0] == results[1]
    assert results[0][0]["body"] == "hello"


def test_expect_100_continue_is_answered_as_by_pywsgi(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    request = (
        b"POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\nabc"
    )
    fast, stock = servers
    fast_response = raw_response(fast.url, request)
    assert fast_response.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    continued = fast_response.split(b"\r\n\r\n", 1)[1]
    assert answers(continued) == answers(raw_response(stock.url, request).split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize("request_bytes", [REQUESTS[1], REQUESTS[3], REQUESTS[6]])
def test_a_request_sent_byte_by_byte_gets_the_same_answer(
    servers: tuple[ServerProcess, ServerProcess], request_bytes: bytes
) -> None:
    """Heads and bodies arriving in pieces, line ends split across reads
    (a bare-LF head among them, handed to pywsgi's reader mid-way)."""
    results = []
    for server in servers:
        with connect(server.url) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for index in range(len(request_bytes)):
                sock.sendall(request_bytes[index : index + 1])
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        results.append(answers(b"".join(chunks)))
    assert results[0] and results[0] == results[1]
