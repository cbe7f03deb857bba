"""Resume and gaps, the same on every transport, over real sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from tests.support.clients import AUTH, TRANSPORTS, item_ids, items, publish, take
from tests.support.servers import ServerProcess, open_connections, pywsgi_server, wait_until

TOTAL = 300


@pytest.fixture(scope="module")
def short_history() -> Iterator[ServerProcess]:
    """A server that retains only 5 messages per channel."""
    with pywsgi_server(PUSH_TEST_MAX_MESSAGES="5", PUSH_TEST_HEARTBEAT="0.5") as process:
        yield process


def publish_continuously(base_url: str, channel: str, total: int, cut_every: int) -> None:
    """Publish ``total`` messages, cutting every connection server-side now and then."""
    with requests.Session() as session:
        for n in range(1, total + 1):
            response = session.post(
                f"{base_url}/push/publish/{channel}", json={"data": n}, headers=AUTH, timeout=5
            )
            assert response.status_code == 201
            if n % cut_every == 0:
                session.post(f"{base_url}/_test/cut", timeout=5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resume_after_cuts_loses_nothing(server: ServerProcess, transport: str) -> None:
    """Publish continuously; the client drops its connection every 23 messages
    and the server cuts every connection every 50; every id arrives once, in order."""
    channel = f"cuts-{transport}"
    publisher = threading.Thread(
        target=publish_continuously, args=(server.url, channel, TOTAL, 50), daemon=True
    )
    received: list[dict[str, object]] = []
    position = 0
    publisher.start()
    while len(received) < TOTAL:
        # ``take`` ends at 23 items or when the server cuts the connection.
        wanted = min(23, TOTAL - len(received))
        chunk = take(items(server.url, transport, channel, position), wanted)
        received.extend(chunk)
        if chunk:
            position = int(chunk[-1]["id"])  # type: ignore[call-overload]
    publisher.join(30)
    assert [item.get("event") for item in received] == ["message"] * TOTAL
    assert item_ids(received) == list(range(1, TOTAL + 1))
    assert [item["data"] for item in received] == list(range(1, TOTAL + 1))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gap_notice_when_history_ran_out(short_history: ServerProcess, transport: str) -> None:
    channel = f"gap-{transport}"
    for n in range(1, 11):
        publish(short_history.url, channel, n)
    got = take(items(short_history.url, transport, channel, 2), 6)
    assert got[0] == {"event": "gap", "data": {"requested": 2, "first": 6, "last": 10}}
    assert item_ids(got[1:]) == [6, 7, 8, 9, 10]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gap_notice_when_ahead_of_the_channel(short_history: ServerProcess, transport: str) -> None:
    """A client ahead of the channel (e.g. the in-memory broker restarted) is
    told, gets what is retained, then keeps receiving."""
    channel = f"ahead-{transport}"
    publish(short_history.url, channel, {"n": 1})
    source = items(short_history.url, transport, channel, 40)
    first_two = [next(source), next(source)]
    assert first_two[0] == {"event": "gap", "data": {"requested": 40, "first": 1, "last": 1}}
    assert first_two[1]["id"] == 1
    publish(short_history.url, channel, {"n": 2})
    assert take(source, 1)[0]["id"] == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_position_zero_gets_everything_retained_without_gap(
    short_history: ServerProcess, transport: str
) -> None:
    channel = f"zero-{transport}"
    for n in range(1, 8):
        publish(short_history.url, channel, n)
    got = take(items(short_history.url, transport, channel, 0), 5)
    assert [item.get("id") for item in got] == [3, 4, 5, 6, 7]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_position_means_only_new_messages(server: ServerProcess, transport: str) -> None:
    channel = f"new-only-{transport}"
    publish(server.url, channel, ["before"])

    def publish_once_subscribed() -> None:
        wait_until(lambda: open_connections(server, transport) == 1, 5, "the subscriber")
        publish(server.url, channel, ["after"])

    publisher = threading.Thread(target=publish_once_subscribed)
    publisher.start()
    got = take(items(server.url, transport, channel, None), 1)
    publisher.join(10)
    assert got == [{"id": 2, "event": "message", "data": ["after"]}]
