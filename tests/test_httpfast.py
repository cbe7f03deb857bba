"""Request heads parsed by llhttp (the ``speedups`` extra) give the app the
same WSGI environ as pywsgi's own parser: the same raw requests, sent to a
server on each path, get the same answers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.support.raw_http import raw_response
from tests.support.servers import ServerProcess
from wsgi_push.httpfast import httptools


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
