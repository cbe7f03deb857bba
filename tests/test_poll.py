"""Long polling: the body encoder and the live endpoint's holding behaviour."""

from __future__ import annotations

import json
import threading
import time

import requests

from tests.support.clients import publish
from tests.support.servers import ServerProcess, open_connections, wait_until
from wsgi_push import Gap, Message
from wsgi_push.brokers.base import Batch
from wsgi_push.transports.poll import encode_poll_body


def test_poll_body_matches_the_contract() -> None:
    batch = Batch([Message("c", 5, "message", [1]), Message("c", 6, "x", "t")], Gap(2, 5, 6), 6)
    assert json.loads(encode_poll_body("c", batch)) == {
        "channel": "c",
        "messages": [
            {"id": 5, "event": "message", "data": [1]},
            {"id": 6, "event": "x", "data": "t"},
        ],
        "last_id": 6,
        "gap": {"requested": 2, "first": 5, "last": 6},
    }
    assert json.loads(encode_poll_body("c", Batch([], None, 9)))["last_id"] == 9


def test_poll_body_bytes() -> None:
    """Compact JSON, field order as in the contract, UTF-8 text unescaped."""
    batch = Batch([Message("c", 5, "message", {"t": "caf\u00e9"})], None, 5)
    assert encode_poll_body("c", batch) == (
        '{"channel":"c","messages":[{"id":5,"event":"message","data":{"t":"caf\u00e9"}}],'
        '"last_id":5,"gap":null}'.encode()
    )
    gap = encode_poll_body("c", Batch([], Gap(9, 0, 4), 4))
    assert gap == (
        b'{"channel":"c","messages":[],"last_id":4,"gap":{"requested":9,"first":0,"last":4}}'
    )


def test_poll_answers_to_one_batch_are_the_same_bytes_and_follow_the_channel() -> None:
    """The long polls one publish wakes read one shared batch: encoded once."""
    batch = Batch([Message("c", 5, "message", 1)], None, 5)
    first = encode_poll_body("c", batch)
    assert encode_poll_body("c", batch) is first
    assert json.loads(encode_poll_body("d", batch))["channel"] == "d"
    equal = Batch([Message("c", 5, "message", 2)], None, 5)  # another batch, another answer
    assert json.loads(encode_poll_body("c", equal))["messages"][0]["data"] == 2


def poll(server: ServerProcess, channel: str, **params: object) -> requests.Response:
    return requests.get(f"{server.url}/push/poll/{channel}", params=params, timeout=10)


def test_answers_at_once_with_everything_available(server: ServerProcess) -> None:
    for n in range(3):
        publish(server.url, "ready", n)
    response = poll(server, "ready", since=0)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.json()
    assert [m["data"] for m in answer["messages"]] == [0, 1, 2]
    assert answer["last_id"] == 3 and answer["gap"] is None and answer["channel"] == "ready"


def test_holds_until_the_next_message(server: ServerProcess) -> None:
    answers: list[dict[str, object]] = []
    waiter = threading.Thread(target=lambda: answers.append(poll(server, "held").json()))
    waiter.start()
    # Wait until the poll is really held by the server, then publish.
    wait_until(lambda: open_connections(server, "poll") == 1, 5, "the poll to be held")
    message_id = publish(server.url, "held", "wake")
    waiter.join(5)
    assert answers and answers[0]["messages"] == [
        {"id": message_id, "event": "message", "data": "wake"}
    ]


def test_timeout_answers_empty_with_the_position_to_pass_next(server: ServerProcess) -> None:
    publish(server.url, "empty-timeout", "x")
    started = time.monotonic()
    answer = poll(server, "empty-timeout", since=1, timeout=0.3).json()
    assert 0.25 < time.monotonic() - started < 3
    assert answer == {"channel": "empty-timeout", "messages": [], "last_id": 1, "gap": None}


def test_absent_since_means_only_new_messages(server: ServerProcess) -> None:
    publish(server.url, "fresh", "old")
    answer = poll(server, "fresh", timeout=0).json()
    assert answer["messages"] == [] and answer["last_id"] == 1


def test_timeout_above_the_server_cap_is_capped(server: ServerProcess) -> None:
    """The test server's poll_timeout is 2 s; asking for 3600 waits no longer."""
    publish(server.url, "capped", "x")
    started = time.monotonic()
    answer = poll(server, "capped", since=1, timeout=3600).json()
    assert 1.5 < time.monotonic() - started < 5 and answer["messages"] == []
