"""Limits: connections per process, subscribers per channel, channels held,
long-poll batch size — each refused clearly, nothing else disturbed."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

import pytest
import requests
from werkzeug.test import Client

from tests.support.batches import batch_ids
from tests.support.clients import item_ids
from tests.support.servers import ServerProcess, open_connections, pywsgi_server, wait_until
from wsgi_push import MemoryBroker, PushMiddleware
from wsgi_push.errors import TooManyChannels


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerProcess]:
    with pywsgi_server(
        PUSH_TEST_MAX_CONNECTIONS="4", PUSH_TEST_MAX_SUBSCRIBERS="2", PUSH_TEST_HEARTBEAT="0.3"
    ) as process:
        yield process


def stream(server: ServerProcess, channel: str) -> requests.Response:
    return requests.get(f"{server.url}/push/sse/{channel}", stream=True, timeout=5)


def test_connections_over_the_limit_get_503_with_retry_after(limited: ServerProcess) -> None:
    held = [stream(limited, f"c{n}") for n in range(4)]
    try:
        assert all(response.status_code == 200 for response in held)
        for path in ["/push/sse/other", "/push/stream/other", "/push/poll/other?timeout=0"]:
            refused = requests.get(f"{limited.url}{path}", timeout=5)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert refused.json() == {"error": "too many connections"}
        # Publishing is not a held connection: it still works.
        assert requests.get(f"{limited.url}/app/stream", timeout=5).status_code == 200
    finally:
        held.pop().close()
    wait_until(lambda: open_connections(limited) == 3, 10, "a slot to free up")
    again = stream(limited, "other")
    assert again.status_code == 200
    for response in [*held, again]:
        response.close()
    wait_until(lambda: open_connections(limited) == 0, 10, "all connections released")


def test_subscribers_per_channel_limit(limited: ServerProcess) -> None:
    first, second = stream(limited, "crowded"), stream(limited, "crowded")
    try:
        third = stream(limited, "crowded")
        assert third.status_code == 503 and "subscribers" in third.json()["error"]
        elsewhere = stream(limited, "quiet")
        assert elsewhere.status_code == 200
        elsewhere.close()
    finally:
        first.close()
        second.close()
    wait_until(lambda: open_connections(limited) == 0, 10, "all connections released")


def test_channel_limit_drops_idle_channels_then_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("wsgi_push.brokers.memory.time.time", lambda: clock[0])
    monkeypatch.setattr("wsgi_push.brokers.history.time.time", lambda: clock[0])
    broker = MemoryBroker(max_channels=3, max_age=60)
    for channel in ["a", "b", "c"]:
        broker.publish(channel, 1)
    with pytest.raises(TooManyChannels):
        broker.publish("d", 1)
    assert broker.channel_count == 3 and broker.read("a", 0).messages[0].data == 1
    clock[0] += 120  # everything expired: the channels are idle now
    broker.add_subscriber("a")  # ...except one with a subscriber
    assert broker.publish("d", 2) == 2  # above every id the dropped channels had
    assert broker.channel_count == 2 and broker.last_id("a") == 1


def test_a_dropped_channel_made_again_reuses_no_id(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("wsgi_push.brokers.memory.time.time", lambda: clock[0])
    monkeypatch.setattr("wsgi_push.brokers.history.time.time", lambda: clock[0])
    broker = MemoryBroker(max_channels=1, max_age=1)
    assert [broker.publish("a", n) for n in range(3)] == [1, 2, 3]
    clock[0] += 5  # a's messages expire; publishing to b drops a
    broker.publish("b", "x")
    clock[0] += 5
    again = [broker.publish("a", n) for n in range(5)]
    assert again == [5, 6, 7, 8, 9]  # b, dropped in turn, had id 4
    # A reader that saw a's id 3 before the drop gets everything since, unskipped.
    assert batch_ids(broker.read("a", 3)) == again


def test_subscribing_to_random_channels_holds_no_memory() -> None:
    broker = MemoryBroker()
    client = Client(PushMiddleware(lambda e, s: [], broker=broker))
    for _ in range(500):
        name = "".join(random.choices(string.ascii_letters, k=20))
        assert client.get(f"/push/poll/{name}?since=0&timeout=0").status_code == 200
    assert broker.channel_count == 0 and broker.signals._waiting == {}


def test_long_poll_answers_in_batches() -> None:
    broker = MemoryBroker()
    client = Client(PushMiddleware(lambda e, s: [], broker=broker, poll_batch_limit=10))
    for n in range(25):
        broker.publish("many", n)
    position, sizes = 0, []
    while position < 25:
        answer = client.get(f"/push/poll/many?since={position}&timeout=0").json
        sizes.append(len(answer["messages"]))
        assert item_ids(answer["messages"]) == list(range(position + 1, position + 1 + sizes[-1]))
        position = answer["last_id"]
    assert sizes == [10, 10, 5]
