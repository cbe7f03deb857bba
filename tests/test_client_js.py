"""The JavaScript client (``wsgi_push/static/client.js``) in headless Chromium,
against a real server: resume across cuts, gaps, named events, transport choice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.browser import wait_for
from tests.support.clients import publish
from tests.support.servers import ServerProcess, pywsgi_server, wait_until

TRANSPORTS = ["sse", "stream", "poll"]
# Short back-off so that reconnects after a cut take tens of milliseconds.
FAST_RETRY = {"minDelay": 50, "maxDelay": 400}

SUBSCRIBE = """([channel, options]) => {
  window.received = []; window.named = []; window.gaps = []; window.errors = []; window.opens = 0;
  const onEvent = Object.fromEntries((options.events || []).map((e) => [e, (m) => named.push(m)]));
  window.subscription = WsgiPush.subscribe(channel, Object.assign(options, {
    onMessage: (m) => received.push(m),
    onEvent,
    onGap: (g) => gaps.push(g),
    onOpen: () => { opens += 1; },
    onError: (e) => errors.push(e),
  }));
  return subscription.transport;
}"""


@pytest.fixture(scope="module")
def live() -> Iterator[ServerProcess]:
    """The test app with fast heartbeats and a 0.1 s SSE reconnect delay."""
    with pywsgi_server(
        PUSH_TEST_HEARTBEAT="0.5", PUSH_TEST_POLL_TIMEOUT="5", PUSH_TEST_SSE_RETRY="0.1"
    ) as process:
        yield process


@pytest.fixture(scope="module")
def short_memory() -> Iterator[ServerProcess]:
    """The test app retaining only the newest 5 messages per channel."""
    with pywsgi_server(PUSH_TEST_MAX_MESSAGES="5", PUSH_TEST_POLL_TIMEOUT="5") as process:
        yield process


def open_client(page: Any, server: ServerProcess, channel: str, **options: Any) -> str:
    """Load the client page and subscribe; returns the transport in use."""
    page.goto(server.url + "/_test/client")
    transport: str = page.evaluate(SUBSCRIBE, [channel, {**FAST_RETRY, **options}])
    return transport


def subscribers(server: ServerProcess, channel: str) -> int:
    count: int = requests.get(f"{server.url}/_test/state?{channel}", timeout=5).json()[
        "subscribers"
    ]
    return count


def received_ids(page: Any) -> list[int]:
    ids: list[int] = page.evaluate("received.map((m) => m.id)")
    return ids


class Publisher(threading.Thread):
    """Publishes 1, 2, 3 … to a channel over HTTP every few milliseconds until stopped."""

    def __init__(self, base_url: str, channel: str, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.base_url, self.channel, self.interval = base_url, channel, interval
        self.last_id = 0
        self._stop_requested = threading.Event()

    def run(self) -> None:
        # The wait paces publishing; it synchronises nothing.
        while not self._stop_requested.wait(self.interval):
            self.last_id = publish(self.base_url, self.channel, {"n": self.last_id + 1})

    def stop(self) -> int:
        self._stop_requested.set()
        self.join(timeout=10)
        return self.last_id


@pytest.mark.parametrize("transport", [*TRANSPORTS, "stream-xhr"])
def test_resume_after_cuts_delivers_every_id_once_in_order(
    page: Any, live: ServerProcess, transport: str
) -> None:
    """Four server-side cuts during continuous publishing lose and repeat nothing."""
    channel = f"cuts-{transport}"
    if transport == "stream-xhr":
        # No fetch: the stream transport falls back to XHR progress events.
        page.add_init_script("delete window.fetch")
        transport = "stream"
    assert open_client(page, live, channel, transport=transport, since=0) == transport
    if transport != "poll":
        wait_for(page, "opens >= 1")
    publisher = Publisher(live.url, channel)
    publisher.start()
    try:
        for cut in range(1, 5):
            wait_for(page, "(n) => received.length >= n", 15 * cut)
            requests.post(live.url + "/_test/cut", timeout=5)
    finally:
        last_id = publisher.stop()
    wait_for(page, "(n) => received.length && received[received.length - 1].id >= n", last_id)
    assert received_ids(page) == list(range(1, last_id + 1))
    assert page.evaluate("gaps") == []
    if transport != "poll":  # a cut long poll just answers early; no reconnect
        wait_for(page, "opens >= 5")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resuming_past_retention_reports_a_gap(
    page: Any, short_memory: ServerProcess, transport: str
) -> None:
    channel = f"gap-{transport}"
    for n in range(1, 11):
        publish(short_memory.url, channel, n)
    open_client(page, short_memory, channel, transport=transport, since=2)
    wait_for(page, "received.length >= 5")
    assert page.evaluate("gaps") == [{"requested": 2, "first": 6, "last": 10}]
    assert page.evaluate("received.map((m) => [m.id, m.data])") == [[n, n] for n in range(6, 11)]
    assert page.evaluate("subscription.lastId") == 10


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_named_events_reach_named_handlers(page: Any, live: ServerProcess, transport: str) -> None:
    """Named events go to their handler, "message" to onMessage, others nowhere;
    a str payload arrives as that string on every transport."""
    channel = f"named-{transport}"
    publish(live.url, channel, {"title": "hi"}, event="headline")
    publish(live.url, channel, "plain <b>text</b>")
    publish(live.url, channel, {"ignored": True}, event="unheard")
    publish(live.url, channel, [1, 2], event="headline")
    open_client(page, live, channel, transport=transport, since=0, events=["headline"])
    wait_for(page, "named.length >= 2")
    assert page.evaluate("named.map((m) => [m.id, m.event, m.data])") == [
        [1, "headline", {"title": "hi"}],
        [4, "headline", [1, 2]],
    ]
    assert page.evaluate("received.map((m) => [m.id, m.event, m.data])") == [
        [2, "message", "plain <b>text</b>"]
    ]
    assert page.evaluate("subscription.lastId") == 4


def test_sse_recovers_when_the_browser_gives_up(page: Any, live: ServerProcess) -> None:
    """A 503 makes EventSource close for good; the client reopens it with
    ``?last_event_id=`` after a back-off and misses nothing."""
    channel = "sse-503"
    publish(live.url, channel, 1)
    open_client(page, live, channel, transport="sse", since=0)
    wait_for(page, "received.length >= 1")
    refused: list[str] = []

    def refuse_once(route: Any) -> None:
        if refused:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.fulfill(status=503, body="down for a moment")

    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.route("**/push/sse/**", refuse_once)
    requests.post(live.url + "/_test/cut", timeout=5)
    for n in (2, 3):
        publish(live.url, channel, n)
    wait_for(page, "received.length >= 3")
    assert received_ids(page) == [1, 2, 3]
    assert refused  # the browser's own reconnect was refused
    assert wait_for(page, "errors.some((e) => e.message.includes('closed'))")
    assert any("last_event_id=1" in url for url in requested[1:])


@pytest.mark.parametrize(
    ("remove", "expected"),
    [("", "sse"), ("delete window.EventSource", "stream"), ("delete window.fetch", "poll")],
)
def test_auto_picks_the_best_transport_available(
    page: Any, live: ServerProcess, remove: str, expected: str
) -> None:
    if remove:
        page.add_init_script(f"delete window.EventSource; {remove}")
    assert open_client(page, live, "auto", transport="auto") == expected


def test_close_ends_the_connection(page: Any, live: ServerProcess) -> None:
    channel = "closing"
    open_client(page, live, channel, transport="stream")
    wait_for(page, "opens >= 1")
    assert subscribers(live, channel) == 1
    page.evaluate("subscription.close()")
    publish(live.url, channel, "after close")  # the write that notices the close
    wait_until(lambda: subscribers(live, channel) == 0, 10, "the server to see the subscriber go")
    assert page.evaluate("received") == []


@pytest.mark.parametrize("transport", ["sse", "stream"])
def test_subscription_from_now_survives_a_cut_before_its_first_message(
    page: Any, live: ServerProcess, transport: str
) -> None:
    """Subscribed with no position, cut before any message arrived, and a
    message published before the reconnect: it still arrives, exactly once."""
    channel = f"from-now-{transport}"
    for n in range(3):
        publish(live.url, channel, n)
    open_client(page, live, channel, transport=transport)
    wait_for(page, "opens >= 1")
    wait_until(lambda: subscribers(live, channel) == 1, 10, "the subscriber")
    requests.post(live.url + "/_test/cut", timeout=5)
    publish(live.url, channel, "published while cut")
    wait_for(page, "opens >= 2")
    publish(live.url, channel, "after the reconnect")
    wait_for(page, "received.length >= 2")
    assert page.evaluate("received.map((m) => [m.id, m.data])") == [
        [4, "published while cut"],
        [5, "after the reconnect"],
    ]
