"""Delivery under a threaded development server (werkzeug's, as ``flask run``
uses), where every request has its own thread and gevent hub: a publish in
one thread must wake subscribers parked in others at once, not at their next
heartbeat or poll timeout."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.clients import AUTH, publish, sse_events
from tests.support.servers import ServerProcess, wait_until

DELIVERY_BOUND = 0.5  # seconds; measured at a few ms, the heartbeat is 30 s


@pytest.fixture(scope="module")
def threaded() -> Iterator[ServerProcess]:
    with ServerProcess([sys.executable, "-m", "tests.support.threaded_app"]).start() as process:
        yield process


def open_connections(server: ServerProcess, transport: str) -> int:
    stats = requests.get(f"{server.url}/push/stats", headers=AUTH, timeout=5).json()
    return int(stats["open_connections"].get(transport, 0))


def test_sse_delivers_at_once_across_threads(threaded: ServerProcess) -> None:
    url = f"{threaded.url}/push/sse/threaded-sse"
    with requests.get(url, stream=True, timeout=(5, 10)) as response:
        events = sse_events(response)
        wait_until(lambda: open_connections(threaded, "sse") == 1, 5, "the subscriber")
        for n in range(1, 4):
            started = time.monotonic()
            publish(threaded.url, "threaded-sse", n)
            event = next(events)
            elapsed = time.monotonic() - started
            assert (event.id, event.data) == (str(n), str(n))
            assert elapsed < DELIVERY_BOUND, f"delivered after {elapsed:.3f}s"


def test_long_poll_answers_at_once_across_threads(threaded: ServerProcess) -> None:
    answer: dict[str, object] = {}

    def poll() -> None:
        response = requests.get(
            f"{threaded.url}/push/poll/threaded-poll", params={"timeout": "20"}, timeout=30
        )
        answer.update(response.json(), answered_at=time.monotonic())

    poller = threading.Thread(target=poll)
    poller.start()
    wait_until(lambda: open_connections(threaded, "poll") == 1, 5, "the long poll")
    started = time.monotonic()
    publish(threaded.url, "threaded-poll", "hello")
    poller.join(10)
    assert answer["messages"] == [{"id": 1, "event": "message", "data": "hello"}]
    elapsed = float(answer["answered_at"]) - started  # type: ignore[arg-type]
    assert elapsed < DELIVERY_BOUND, f"answered after {elapsed:.3f}s"


def test_many_threads_publishing_get_distinct_ids(threaded: ServerProcess) -> None:
    ids: list[int] = []

    def publish_some() -> None:
        with requests.Session() as session:
            for n in range(20):
                response = session.post(
                    f"{threaded.url}/push/publish/threaded-ids", json={"data": n}, headers=AUTH
                )
                ids.append(response.json()["id"])

    publishers = [threading.Thread(target=publish_some) for _ in range(4)]
    for publisher in publishers:
        publisher.start()
    for publisher in publishers:
        publisher.join(30)
    assert sorted(ids) == list(range(1, 81))
