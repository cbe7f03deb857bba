"""Many channels over one connection, on every transport, over real sockets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.clients import (
    AUTH,
    TRANSPORTS,
    Cursor,
    SSEParser,
    multiplexed_items,
    publish,
    take,
)
from tests.support.raw_http import send
from tests.support.servers import (
    ServerProcess,
    open_connections,
    pywsgi_server,
    subscriber_count,
    wait_until,
)

CHANNELS = ["alpha", "beta", "gamma"]
PER_CHANNEL = 60


@pytest.fixture(scope="module")
def short_history() -> Iterator[ServerProcess]:
    """Retains 5 messages per channel; nobody may subscribe to ``secret``."""
    with pywsgi_server(
        PUSH_TEST_MAX_MESSAGES="5",
        PUSH_TEST_HEARTBEAT="0.5",
        PUSH_TEST_REFUSED_CHANNELS="secret",
        PUSH_TEST_MAX_BATCH_MESSAGES="20",
    ) as process:
        yield process


def publish_round_robin(
    base_url: str, channels: list[str], per_channel: int, cut_every: int, first: int = 1
) -> None:
    """Publish ``per_channel`` messages on each channel in turn (batches of
    one per channel, data and ids from ``first`` on), cutting every
    connection server-side every ``cut_every`` rounds."""
    with requests.Session() as session:
        for n in range(first, first + per_channel):
            batch = {"messages": [{"channel": channel, "data": n} for channel in channels]}
            response = session.post(f"{base_url}/push/publish", json=batch, headers=AUTH, timeout=5)
            assert response.status_code == 201, response.text
            assert response.json() == {"ids": [n] * len(channels)}
            if n % cut_every == 0:
                session.post(f"{base_url}/_test/cut", timeout=5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_multiplexed_resume_after_cuts_loses_nothing(server: ServerProcess, transport: str) -> None:
    """Continuous publishing on three channels; the client drops its connection
    every 23 items and the server cuts every connection every 15 rounds;
    every id of every channel arrives exactly once, in order per channel."""
    channels = [f"{name}-{transport}" for name in CHANNELS]
    publisher = threading.Thread(
        target=publish_round_robin, args=(server.url, channels, PER_CHANNEL, 15), daemon=True
    )
    cursor = Cursor(channels, "0")
    received: list[dict[str, Any]] = []
    publisher.start()
    total = PER_CHANNEL * len(channels)
    while len(received) < total:
        received.extend(
            take(
                multiplexed_items(server.url, transport, channels, cursor),
                min(23, total - len(received)),
            )
        )
    publisher.join(30)
    assert not publisher.is_alive()
    for channel in channels:
        of_channel = [item for item in received if item.get("channel") == channel]
        assert [item["id"] for item in of_channel] == list(range(1, PER_CHANNEL + 1)), channel
        assert [item["data"] for item in of_channel] == list(range(1, PER_CHANNEL + 1))
    assert all(item.get("event") == "message" for item in received)
    assert cursor.value == ",".join([str(PER_CHANNEL)] * len(channels))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gap_on_one_channel_and_not_the_others(
    short_history: ServerProcess, transport: str
) -> None:
    lost, kept, empty = (f"{name}-gap-{transport}" for name in ("lost", "kept", "empty"))
    for n in range(1, 11):
        publish(short_history.url, lost, n)
    for n in range(1, 3):
        publish(short_history.url, kept, n)
    channels = [lost, kept, empty]
    got = take(
        multiplexed_items(short_history.url, transport, channels, Cursor(channels, "2,0,")), 8
    )
    gaps = [item["data"] for item in got if item.get("event") == "gap"]
    assert gaps == [{"channel": lost, "requested": 2, "first": 6, "last": 10}]
    messages = [(item["channel"], item["id"]) for item in got if item.get("event") != "gap"]
    assert sorted(messages) == sorted([(lost, n) for n in range(6, 11)] + [(kept, 1), (kept, 2)])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_empty_entry_means_only_new_and_is_resolved_in_the_first_cursor(
    short_history: ServerProcess, transport: str
) -> None:
    old, fresh = f"old-{transport}", f"fresh-{transport}"
    publish(short_history.url, old, "before")
    publish(short_history.url, fresh, "before")
    channels = [old, fresh]
    cursor = Cursor(channels, ",0")
    source = multiplexed_items(short_history.url, transport, channels, cursor)
    first = next(source)
    assert (first["channel"], first["id"]) == (fresh, 1)  # old's message came before: skipped
    publish(short_history.url, old, "after")
    second = take(source, 1)[0]
    assert (second["channel"], second["id"], second["data"]) == (old, 2, "after")
    assert cursor.value == "2,1"


def test_sse_opens_with_the_resolved_cursor(short_history: ServerProcess) -> None:
    publish(short_history.url, "opening-a", 1)
    url = f"{short_history.url}/push/sse/opening-a,opening-b?since=,0"
    with requests.get(url, stream=True, timeout=(5, 10)) as response:
        opening = next(response.iter_content(chunk_size=None))
    assert opening == b"retry: 2000\n\nid: 1,0\n\n"


def test_sse_gap_with_nothing_retained_moves_the_cursor(short_history: ServerProcess) -> None:
    """A channel the client is ahead of, with nothing retained: the gap is
    followed by a data-less ``id:`` with that entry at the channel's last id."""
    url = f"{short_history.url}/push/sse/nothing-here,else-here?since=7,0"
    parser = SSEParser()
    with requests.get(url, stream=True, timeout=(5, 10)) as response:
        events: list[Any] = []
        for chunk in response.iter_content(chunk_size=None):
            events += parser.feed_bytes(chunk)
            if events and parser.last_event_id == "0,0":
                break
    assert [(event.event, json.loads(event.data)) for event in events] == [
        ("gap", {"channel": "nothing-here", "requested": 7, "first": 0, "last": 0})
    ]


def test_poll_answer_shape_and_batch_limit(short_history: ServerProcess) -> None:
    for n in range(1, 4):
        publish(short_history.url, "shape-a", n)
        publish(short_history.url, "shape-b", n, event="tick")
    answer = requests.get(
        f"{short_history.url}/push/poll/shape-a,shape-b", params={"since": "0"}, timeout=10
    ).json()
    assert answer["channels"] == ["shape-a", "shape-b"] and answer["gaps"] == []
    assert [(m["channel"], m["id"]) for m in answer["messages"]] == [
        ("shape-a", 1), ("shape-b", 1), ("shape-a", 2),
        ("shape-b", 2), ("shape-a", 3), ("shape-b", 3),
    ]  # fmt: skip
    assert answer["messages"][1] == {"channel": "shape-b", "id": 1, "event": "tick", "data": 1}
    assert answer["cursor"] == "3,3"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_refused_channel_refuses_the_request_naming_no_other(
    short_history: ServerProcess, transport: str
) -> None:
    status, _, body = send(short_history.url, "GET", f"/push/{transport}/public-one,secret")
    assert status == 403
    assert "public-one" not in body.decode() and "secret" not in body.decode()
    assert json.loads(body)["error"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("path", "query"),
    [
        (",".join(f"c{n}" for n in range(65)), ""),
        ("dup,other,dup", ""),
        ("a,,b", ""),
        ("a,b,", ""),
        ("a,b,c", "?since=1,2"),
        ("a,b", "?since=1,x"),
        ("a,b", "?since=-1,2"),
    ],
    ids=[
        "65-channels",
        "duplicate",
        "empty-name",
        "trailing-comma",
        "short-cursor",
        "bad-entry",
        "negative-entry",
    ],  # fmt: skip
)
def test_bad_multiplexed_requests_answer_400(
    short_history: ServerProcess, transport: str, path: str, query: str
) -> None:
    status, headers, body = send(short_history.url, "GET", f"/push/{transport}/{path}{query}")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]


def test_sse_cursor_in_last_event_id_is_checked_too(short_history: ServerProcess) -> None:
    status, _, body = send(short_history.url, "GET", "/push/sse/a,b", **{"Last-Event-ID": "1,2,3"})
    assert status == 400 and "Last-Event-ID" in json.loads(body)["error"]


def test_one_connection_slot_and_presence_per_channel(short_history: ServerProcess) -> None:
    url = f"{short_history.url}/push/sse/seat-a,seat-b,seat-c"
    # Earlier tests' streams end at their next heartbeat (0.5 s).
    wait_until(lambda: open_connections(short_history) == 0, 5, "earlier streams to end")
    with requests.get(url, stream=True, timeout=(5, 10)) as response:
        next(response.iter_content(chunk_size=None))
        assert open_connections(short_history, "sse") == 1
        assert [subscriber_count(short_history, c) for c in ("seat-a", "seat-b", "seat-c")] == [
            1
        ] * 3
    wait_until(lambda: subscriber_count(short_history, "seat-b") == 0, 5, "presence to drop")
    assert open_connections(short_history, "sse") == 0


# Batch publishing ---------------------------------------------------------------


def post_batch(
    server: ServerProcess, body: Any, headers: dict[str, str] = AUTH
) -> requests.Response:
    return requests.post(f"{server.url}/push/publish", json=body, headers=headers, timeout=5)


def test_batch_publishing_returns_ids_in_request_order(short_history: ServerProcess) -> None:
    response = post_batch(
        short_history,
        {"messages": [
            {"channel": "batch-a", "data": 1},
            {"channel": "batch-b", "data": {"x": 1}, "event": "tick"},
            {"channel": "batch-a", "data": 2},
        ]},
    )  # fmt: skip
    assert response.status_code == 201 and response.json() == {"ids": [1, 1, 2]}
    answer = requests.get(f"{short_history.url}/push/poll/batch-b?since=0", timeout=5).json()
    assert answer["messages"] == [{"id": 1, "event": "tick", "data": {"x": 1}}]


@pytest.mark.parametrize(
    ("body", "status", "names_index"),
    [
        ({"messages": []}, 400, None),
        ({}, 400, None),
        ({"messages": [{"channel": "batch-c", "data": 1}], "extra": 1}, 400, None),
        ({"messages": [{"channel": "batch-c", "data": 1}, {"channel": "batch-c"}]}, 400, 1),
        ({"messages": [{"channel": "batch-c", "data": 1}, {"channel": "b c", "data": 1}]}, 400, 1),
        ({"messages": [{"channel": "batch-c", "data": 1, "colour": "red"}]}, 400, 0),
        ({"messages": [{"channel": "batch-c", "data": 1}, {"channel": "batch-c", "data": 1,
                                                            "event": "gap"}]}, 400, 1),
        ({"messages": [{"channel": "batch-c", "data": n} for n in range(21)]}, 413, None),
        ({"messages": [{"channel": "batch-c", "data": "x" * 70_000}]}, 413, 0),
        ({"messages": [{"channel": "batch-c", "data": 1}, {"channel": "secret", "data": 1}]},
         201, None),  # subscribing to secret is refused, publishing is not
    ],
)  # fmt: skip
def test_batch_publishing_is_all_or_nothing(
    short_history: ServerProcess, body: Any, status: int, names_index: int | None
) -> None:
    before = requests.get(f"{short_history.url}/push/poll/batch-c?timeout=0", timeout=5).json()
    response = post_batch(short_history, body)
    assert response.status_code == status, response.text
    after = requests.get(f"{short_history.url}/push/poll/batch-c?timeout=0", timeout=5).json()
    if status != 201:
        assert after["last_id"] == before["last_id"], "nothing published"
        error = response.json()["error"]
        if names_index is not None:
            assert error.startswith(f"message {names_index}:"), error


def test_batch_publishing_needs_credentials_first(short_history: ServerProcess) -> None:
    response = post_batch(short_history, {"messages": []}, headers={})
    assert response.status_code == 401
    wrong = post_batch(short_history, {"messages": []}, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 403
    status, headers, _ = send(short_history.url, "GET", "/push/publish")
    assert status == 405 and "POST" in headers["Allow"]


# The browser's own EventSource, no client.js ------------------------------------


def sse_connections_opened(server: ServerProcess) -> int:
    stats = requests.get(f"{server.url}/push/stats", headers=AUTH, timeout=5).json()
    return int(stats["connections_opened"].get("sse", 0))


@pytest.fixture(scope="module")
def quick_retry() -> Iterator[ServerProcess]:
    with pywsgi_server(PUSH_TEST_SSE_RETRY="0.1", PUSH_TEST_HEARTBEAT="0.5") as process:
        yield process


def test_chromium_eventsource_reconnect_resumes_every_channel(
    page: Any, quick_retry: ServerProcess
) -> None:
    """Chromium's EventSource sends the cursor back as ``Last-Event-ID`` on its
    own reconnects: three server cuts while publishing lose and repeat nothing."""
    from tests.support.browser import wait_for

    channels = ["eventsource-a", "eventsource-b", "eventsource-c"]
    requests_made: list[Any] = []
    page.on("request", lambda request: requests_made.append(request))
    page.goto(quick_retry.url + "/_test/client")
    page.evaluate(
        """(url) => {
            window.got = [];
            window.source = new EventSource(url);
            source.onmessage = (event) => got.push(JSON.parse(event.data));
        }""",
        f"/push/sse/{','.join(channels)}?since=0",
    )
    for connection in range(1, 4):
        # The browser's first connection, then each reconnect after a cut.
        wait_until(
            lambda n=connection: sse_connections_opened(quick_retry) == n, 10, "a connection"
        )
        publish_round_robin(quick_retry.url, channels, 10, 10, first=10 * connection - 9)
    # The third cut's reconnect carries one more round: it resumed, replaying
    # nothing; and closing the source can't cancel it half-sent (a cancelled
    # request shows Playwright no Last-Event-ID).
    wait_until(lambda: sse_connections_opened(quick_retry) == 4, 10, "the last reconnect")
    publish_round_robin(quick_retry.url, channels, 1, 10, first=31)
    wait_for(page, "got.length >= 93")
    got = page.evaluate("got")
    page.evaluate("source.close()")
    for channel in channels:
        assert [m["id"] for m in got if m["channel"] == channel] == list(range(1, 32)), channel
    assert len(got) == 93
    sent = [r.all_headers().get("last-event-id") for r in requests_made if "/push/sse/" in r.url]
    assert sent[0] is None and len(sent) == 4, sent
    assert all(header is not None and header.count(",") == 2 for header in sent[1:]), sent
