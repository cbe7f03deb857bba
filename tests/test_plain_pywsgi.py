"""PushMiddleware under gevent's plain ``pywsgi.WSGIServer``: the middleware
turns Nagle off itself, so small answers don't wait for the client's delayed
ACK (pywsgi sends a response's head and body in two writes)."""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.apps import TOKEN
from tests.support.servers import ServerProcess, wait_until

ROUNDS = 40
# A delayed ACK holds the second write 40 ms on Linux: a median far below it
# means no answer waited for one.
MEDIAN_LIMIT_S = 0.015

# What the middleware logs once under plain pywsgi (wsgi_push/nodelay.py).
PLAIN_PYWSGI_NOTE = "wsgi_push: served by gevent's plain pywsgi.WSGIServer"


@pytest.fixture(scope="module")
def plain_server() -> Iterator[ServerProcess]:
    argv = [sys.executable, "-m", "tests.support.plain_pywsgi"]
    with ServerProcess(argv, {"PUSH_TEST_POLL_TIMEOUT": "5"}).start() as process:
        yield process


def timed(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
          headers: dict[str, str]) -> tuple[float, int, bytes]:  # fmt: skip
    started = time.perf_counter()
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    return time.perf_counter() - started, response.status, answer


def test_publish_and_long_poll_answers_on_one_connection_are_not_delayed(
    plain_server: ServerProcess,
) -> None:
    address = urlsplit(plain_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    publish_headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    publishes, polls = [], []
    try:
        for number in range(ROUNDS):
            body = json.dumps({"data": number}).encode()
            elapsed, status, answer = timed(
                connection, "POST", "/push/publish/nagle", body, publish_headers
            )
            assert status == 201, answer
            publishes.append(elapsed)
            message_id = json.loads(answer)["id"]
            # The message is there: the long poll is answered at once.
            elapsed, status, answer = timed(
                connection, "GET", f"/push/poll/nagle?since={message_id - 1}", None, {}
            )
            assert status == 200, answer
            assert [m["data"] for m in json.loads(answer)["messages"]] == [number]
            polls.append(elapsed)
    finally:
        connection.close()
    # Linux ACKs at once for the first segments of a connection: only the
    # later rounds would show the delay.
    assert statistics.median(publishes[10:]) < MEDIAN_LIMIT_S, publishes
    assert statistics.median(polls[10:]) < MEDIAN_LIMIT_S, polls


def test_the_plain_server_is_named_once_in_the_log(plain_server: ServerProcess) -> None:
    address = urlsplit(plain_server.url)
    for _ in range(3):  # three connections, each with a push request
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
        _, status, _ = timed(connection, "GET", "/push/poll/note?since=0&timeout=0", None, {})
        connection.close()
        assert status == 200
    wait_until(lambda: any(PLAIN_PYWSGI_NOTE in line for line in plain_server.output), 5,
               "the note in the log")  # fmt: skip
    assert sum(PLAIN_PYWSGI_NOTE in line for line in plain_server.output) == 1
