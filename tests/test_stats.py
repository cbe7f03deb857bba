"""Counters, readable in Python and at GET /push/stats for authorized callers."""

from __future__ import annotations

import requests
from werkzeug.test import Client

from tests.support.clients import AUTH, items, publish, take
from tests.support.servers import ServerProcess
from wsgi_push import MemoryBroker, PushMiddleware


def stats(server: ServerProcess) -> dict[str, object]:
    response = requests.get(f"{server.url}/push/stats", headers=AUTH, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    answer: dict[str, object] = response.json()
    return answer


def test_stats_need_the_token(server: ServerProcess) -> None:
    missing = requests.get(f"{server.url}/push/stats", timeout=5)
    assert missing.status_code == 401
    assert missing.json() == {"error": "stats need 'Authorization: Bearer <token>'"}
    wrong = requests.get(
        f"{server.url}/push/stats", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert wrong.status_code == 403


def test_stats_count_publishes_deliveries_and_gaps(server: ServerProcess) -> None:
    before = stats(server)
    first = publish(server.url, "counted", 1)
    publish(server.url, "counted", 2)
    assert len(take(items(server.url, "stream", "counted", first - 1), 2)) == 2
    assert len(take(items(server.url, "poll", "counted", 999), 3)) == 3  # gap + 2 messages
    after = stats(server)
    assert after["published_over_http"] == before["published_over_http"] + 2  # type: ignore[operator]
    assert after["published"] == before["published"] + 2  # type: ignore[operator]
    assert after["deliveries"] == before["deliveries"] + 4  # type: ignore[operator]
    assert after["gaps_served"] == before["gaps_served"] + 1  # type: ignore[operator]


def test_stats_off_by_default() -> None:
    client = Client(PushMiddleware(lambda e, s: [], broker=MemoryBroker(), publish_token="t"))
    assert client.get("/push/stats", headers={"Authorization": "Bearer t"}).status_code == 404
