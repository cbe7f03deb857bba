"""The JavaScript client (``wsgi_push/static/client.js``) in headless Chromium,
against a real server: resume across cuts, gaps, named events, transport
choice, reconnect back-off; many channels over one connection, changing
the set, one connection shared by the tabs of a browser; the ES module."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.browser import wait_for
from tests.support.clients import publish
from tests.support.servers import (
    ROOT,
    ServerProcess,
    open_connections,
    pywsgi_server,
    subscriber_count,
    wait_until,
)
from wsgi_push.client_script import module_source
from wsgi_push.vendor import write_module

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
    onError: (e) => errors.push(Object.assign({at: performance.now()}, e)),
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


@pytest.fixture(scope="module")
def one_subscriber() -> Iterator[ServerProcess]:
    """The test app admitting one subscriber per channel: the next gets a 503."""
    with pywsgi_server(PUSH_TEST_MAX_SUBSCRIBERS="1", PUSH_TEST_HEARTBEAT="0.5") as process:
        yield process


def open_client(page: Any, server: ServerProcess, channel: str | list[str], **options: Any) -> str:
    """Load the client page and subscribe; returns the transport in use."""
    page.goto(server.url + "/_test/client")
    transport: str = page.evaluate(SUBSCRIBE, [channel, {**FAST_RETRY, **options}])
    return transport


def received_ids(page: Any) -> list[int]:
    ids: list[int] = page.evaluate("received.map((m) => m.id)")
    return ids


class HeldRequests:
    """Holds the page's requests to ``url_pattern`` (they stay pending, as if
    the server were unreachable) until :meth:`release`; later ones pass."""

    def __init__(self, page: Any, url_pattern: str) -> None:
        self.page, self.url_pattern = page, re.compile(url_pattern)
        self.held: list[Any] = []
        self.released = False
        page.route(self.url_pattern, self._handle)

    def _handle(self, route: Any) -> None:
        if self.released:
            route.continue_()
        else:
            self.held.append(route)

    def release(self) -> None:
        self.released = True
        for route in self.held:
            route.continue_()


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
    assert page.evaluate("gaps") == [{"channel": channel, "requested": 2, "first": 6, "last": 10}]
    assert page.evaluate("received.map((m) => [m.id, m.data])") == [[n, n] for n in range(6, 11)]
    assert page.evaluate("subscription.lastId") == 10


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resuming_ahead_of_the_channel_loses_nothing_after_a_cut(
    page: Any, live: ServerProcess, transport: str
) -> None:
    """Resumed from id 5 on a channel that has none (as after an in-memory
    broker restarted): the gap {5, 0, 0} moves the position to 0. The channel
    then passes 5 while the client is cut off, and the reconnect still
    delivers 1..8, not just 6..8."""
    channel = f"ahead-{transport}"
    open_client(page, live, channel, transport=transport, since=5)
    wait_for(page, "gaps.length >= 1")
    assert page.evaluate("gaps") == [{"channel": channel, "requested": 5, "first": 0, "last": 0}]
    assert page.evaluate("subscription.lastId") == 0
    if transport != "poll":
        wait_for(page, "opens >= 1")
        wait_until(lambda: subscriber_count(live, channel) == 1, 10, "the subscriber")
    reconnects = HeldRequests(page, rf"/push/{transport}/{channel}\?")
    requests.post(live.url + "/_test/cut", timeout=5)
    for n in range(1, 9):
        publish(live.url, channel, n)
    reconnects.release()
    wait_for(page, "received.length && received[received.length - 1].id >= 8")
    assert page.evaluate("received.map((m) => [m.id, m.data])") == [[n, n] for n in range(1, 9)]
    assert len(page.evaluate("gaps")) == 1


def gap_only_response(transport: str, gap: dict[str, int]) -> dict[str, Any]:
    """A stream that opens at the requested id, carries a gap notice with no
    ``id:`` record after it, and ends: as if cut right after the notice."""
    if transport == "sse":
        body = f"retry: 50\nid: {gap['requested']}\n\nevent: gap\ndata: {json.dumps(gap)}\n\n"
        return {"status": 200, "content_type": "text/event-stream", "body": body}
    body = "\n" + json.dumps({"event": "gap", "data": gap}) + "\n"
    return {"status": 200, "content_type": "application/x-ndjson", "body": body}


def resumed_from(request: Any) -> int:
    """The position a subscription request resumes from, as the server reads
    it: SSE's ``Last-Event-ID`` header wins over the query."""
    header = request.headers.get("last-event-id")
    if header:
        return int(header)
    query = parse_qs(urlsplit(request.url).query)
    return int((query.get("last_event_id") or query["since"])[0])


# (retained before subscribing, the gap notice from 50, the position to resume from)
GAP_CASES = {
    "behind-retention": (range(1, 8), {"requested": 50, "first": 3, "last": 7}, 2),
    "nothing-retained": (range(0), {"requested": 50, "first": 0, "last": 0}, 0),
}


@pytest.mark.parametrize("case", GAP_CASES)
@pytest.mark.parametrize("transport", ["sse", "stream"])
def test_a_cut_right_after_a_gap_resumes_from_where_the_channel_is(
    page: Any, short_memory: ServerProcess, transport: str, case: str
) -> None:
    """Resumed from 50, far ahead of the channel, and cut right after the
    gap notice, before any message: the reconnect asks from just before the
    retained messages (or from ``last`` when none are), never from 50, so
    it gets no second gap and misses nothing published later."""
    retained, gap, position = GAP_CASES[case]
    channel = f"gap-cut-{transport}-{case}"
    for n in retained:
        publish(short_memory.url, channel, n)
    positions: list[int] = []  # where each request resumes from

    def cut_after_the_gap(route: Any) -> None:
        positions.append(resumed_from(route.request))
        if len(positions) == 1:
            route.fulfill(**gap_only_response(transport, gap))
        else:
            route.continue_()

    page.route(re.compile(rf"/push/{transport}/{channel}\?"), cut_after_the_gap)
    open_client(page, short_memory, channel, transport=transport, since=50)
    wait_for(page, "opens >= 2")
    publish(short_memory.url, channel, "after the reconnect")
    wait_for(page, "received.some((m) => m.data === 'after the reconnect')")
    assert received_ids(page) == list(range(gap["first"] or 1, gap["last"] + 2))
    assert page.evaluate("gaps") == [{"channel": channel, **gap}]
    assert positions[:2] == [50, position]


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
    assert page.evaluate("received.map((m) => [m.channel, m.id, m.event, m.data])") == [
        [channel, 2, "message", "plain <b>text</b>"]
    ]
    assert page.evaluate("subscription.lastId") == 4


def test_handlers_named_error_and_open_never_hear_connection_events(
    page: Any, live: ServerProcess
) -> None:
    """EventSource fires ``open`` and ``error`` for its connection; a page's
    onEvent handlers of those names must not take them for published events
    (the server refuses those names, so none can be published)."""
    channel = "connection-events"
    open_client(page, live, channel, transport="sse", events=["error", "open", "headline"])
    wait_for(page, "opens >= 1")
    requests.post(live.url + "/_test/cut", timeout=5)
    wait_for(page, "opens >= 2")  # reconnected: an error and an open event went by
    fresh = publish(live.url, channel, "after the cut", event="headline")
    wait_for(page, "named.length >= 1")
    assert page.evaluate("named.map((m) => [m.id, m.event, m.data])") == [
        [fresh, "headline", "after the cut"]
    ]


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


# The page's Math.random, in turn: a jitter draw of 0 makes a delay half its
# nominal value, 0.999 (nearly) all of it. The page notes when each stream
# request starts.
RECORD_RECONNECTS = """
  const draws = [0, 0.999, 0.5];
  let draw = 0;
  Math.random = () => draws[draw++ % draws.length];
  window.attempts = [];
  const realFetch = window.fetch;
  window.fetch = function (url) {
    if (String(url).includes("/push/stream/")) { attempts.push(performance.now()); }
    return realFetch.apply(this, arguments);
  };
"""
JITTER_DRAWS = [0, 0.999, 0.5]
BACKOFF = {"minDelay": 50, "maxDelay": 400}
# A timer fires no earlier than asked, but may fire late on a busy machine.
TIMER_LATENESS_MS = 150


def expected_delay(failures: int, retry: int) -> float:
    """The delay of the ``retry``-th reconnect (counted from 0), after
    ``failures`` consecutive failed connections: minDelay × 2ⁿ capped at
    maxDelay, times half to all of it as the jitter draw says."""
    nominal = min(BACKOFF["maxDelay"], BACKOFF["minDelay"] * 2**failures)
    return nominal * (0.5 + JITTER_DRAWS[retry % len(JITTER_DRAWS)] / 2)


def test_reconnect_back_off_grows_to_its_cap_with_jitter_and_resets(
    page: Any, one_subscriber: ServerProcess
) -> None:
    """A real server refusing (503: the channel's one subscriber slot is
    taken): each retry waits minDelay × 2ⁿ, capped at maxDelay, drawn between
    half and all of it. Once a connection succeeds the back-off starts over."""
    channel = "back-off"
    holder = requests.get(f"{one_subscriber.url}/push/stream/{channel}", stream=True, timeout=5)
    try:
        wait_until(lambda: subscriber_count(one_subscriber, channel) == 1, 10, "the slot taken")
        page.add_init_script(RECORD_RECONNECTS)
        open_client(page, one_subscriber, channel, transport="stream", since=0, **BACKOFF)
        refusals = 8
        wait_for(page, "(n) => errors.length >= n", refusals)
        requests.post(one_subscriber.url + "/_test/cut", timeout=5)  # frees the slot
    finally:
        holder.close()
    wait_for(page, "opens >= 1")
    wait_until(
        lambda: subscriber_count(one_subscriber, channel) == 1, 10, "the client's connection"
    )
    requests.post(one_subscriber.url + "/_test/cut", timeout=5)
    wait_for(page, "opens >= 2")

    errors = page.evaluate("errors")
    attempts: list[float] = page.evaluate("attempts")
    refused = len(errors) - 1  # every failure but the last (the cut) was a refusal
    assert refused >= refusals
    assert [e["status"] for e in errors] == [503] * refused + [200]
    # Each attempt follows the error before it by the back-off delay.
    delays = [attempts[k + 1] - errors[k]["at"] for k in range(len(errors))]
    # 25, 100, 150, 200, 400, 300, 200, 400 … ms; after the success 50 × ½…1 again.
    expected = [expected_delay(k, k) for k in range(refused)]
    expected.append(expected_delay(0, refused))
    for delay, wanted in zip(delays, expected, strict=True):
        assert wanted - 2 <= delay <= wanted + TIMER_LATENESS_MS, (delays, expected)


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
    assert subscriber_count(live, channel) == 1
    page.evaluate("subscription.close()")
    publish(live.url, channel, "after close")  # the write that notices the close
    wait_until(
        lambda: subscriber_count(live, channel) == 0, 10, "the server to see the subscriber go"
    )
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
    wait_until(lambda: subscriber_count(live, channel) == 1, 10, "the subscriber")
    requests.post(live.url + "/_test/cut", timeout=5)
    publish(live.url, channel, "published while cut")
    wait_for(page, "opens >= 2")
    publish(live.url, channel, "after the reconnect")
    wait_for(page, "received.length >= 2")
    assert page.evaluate("received.map((m) => [m.id, m.data])") == [
        [4, "published while cut"],
        [5, "after the reconnect"],
    ]


# Many channels over one connection ---------------------------------------

# Each channel's ids in the order they arrived, and a wait until each
# channel has reached its last id.
IDS_BY_CHANNEL = "received.reduce((ids, m) => ((ids[m.channel] ||= []).push(m.id), ids), {})"
REACHED = """(last) => Object.entries(last).every(
  ([channel, n]) => received.some((m) => m.channel === channel && m.id >= n))"""


def ids_by_channel(page: Any) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = page.evaluate(IDS_BY_CHANNEL)
    return ids


def push_requests(page: Any) -> list[str]:
    """The paths of the subscription requests the page makes from now on."""
    paths: list[str] = []
    pattern = re.compile(r"/push/(sse|stream|poll)/")
    page.on("request", lambda r: paths.append(urlsplit(r.url).path) if pattern.search(r.url) else 0)
    return paths


def publish_continuously(base_url: str, channels: list[str]) -> list[Publisher]:
    publishers = [Publisher(base_url, channel) for channel in channels]
    for publisher in publishers:
        publisher.start()
    return publishers


def stop_all(publishers: list[Publisher]) -> dict[str, int]:
    """Stop publishing; each channel's last id."""
    return {publisher.channel: publisher.stop() for publisher in publishers}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_multiplexed_subscription_survives_cuts_with_every_id_once_per_channel(
    page: Any, live: ServerProcess, transport: str
) -> None:
    """Three channels on one connection, four server cuts during continuous
    publishing on all three: per channel every id once, in order."""
    channels = [f"mux-{transport}-{name}" for name in ("a", "b", "c")]
    paths = push_requests(page)
    open_client(page, live, channels, transport=transport, since=0)
    if transport != "poll":
        wait_for(page, "opens >= 1")
        wait_until(lambda: open_connections(live, transport) == 1, 10, "the one connection")
    publishers = publish_continuously(live.url, channels)
    try:
        for cut in range(1, 5):
            wait_for(page, "(n) => received.length >= n", 30 * cut)
            requests.post(live.url + "/_test/cut", timeout=5)
    finally:
        last_ids = stop_all(publishers)
    wait_for(page, REACHED, last_ids)
    assert ids_by_channel(page) == {c: list(range(1, n + 1)) for c, n in last_ids.items()}
    assert page.evaluate("gaps") == []
    assert set(paths) == {f"/push/{transport}/{','.join(channels)}"}  # one URL, all channels


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_add_and_remove_while_publishing_keep_every_other_channel_whole(
    page: Any, live: ServerProcess, transport: str
) -> None:
    """add() and remove() reconnect with the new set; the channel followed
    throughout loses and repeats nothing, the removed one stops, the added
    one starts from "now" and then misses nothing either."""
    kept, removed, added = (f"set-{transport}-{name}" for name in ("kept", "removed", "added"))
    open_client(page, live, [kept, removed], transport=transport, since=0)
    publishers = publish_continuously(live.url, [kept, removed, added])
    try:
        wait_for(page, "(n) => received.length >= n", 20)
        page.evaluate("(c) => subscription.add(c)", added)
        wait_for(page, "(c) => received.filter((m) => m.channel === c).length >= 5", added)
        page.evaluate("(c) => subscription.remove(c)", removed)
        removed_at = page.evaluate("(c) => received.filter((m) => m.channel === c).length", removed)
        wait_for(page, "(c) => received.filter((m) => m.channel === c).length >= 10", added)
    finally:
        last_ids = stop_all(publishers)
    wait_for(page, REACHED, {kept: last_ids[kept], added: last_ids[added]})
    ids = ids_by_channel(page)
    assert ids[kept] == list(range(1, last_ids[kept] + 1))
    assert ids[removed] == list(range(1, removed_at + 1))  # nothing after remove()
    first_added = ids[added][0]
    assert ids[added] == list(range(first_added, last_ids[added] + 1))
    assert page.evaluate("subscription.channels") == [kept, added]
    assert page.evaluate("subscription.positions()") == {
        kept: last_ids[kept],
        added: last_ids[added],
    }


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (0, {"a": [1, 2, 3], "b": [1, 2, 3]}),
        ("1,2", {"a": [2, 3], "b": [3]}),
        ("2", {"a": [3], "b": [3]}),
        ({"b": 1}, {"b": [2, 3]}),
    ],
    ids=["number", "cursor", "one-entry-cursor", "map"],
)
def test_since_as_number_cursor_or_map(
    page: Any, live: ServerProcess, since: Any, expected: dict[str, list[int]]
) -> None:
    """A number applies to every channel, a cursor has one entry per channel,
    a map names channels (the others start from "only new")."""
    prefix = f"since-{re.sub(r'[^a-z0-9]', '', json.dumps(since))}-"
    channels = [prefix + "a", prefix + "b"]
    for n in range(1, 4):
        for channel in channels:
            publish(live.url, channel, n)
    if isinstance(since, dict):
        since = {prefix + name: position for name, position in since.items()}
    open_client(page, live, channels, transport="stream", since=since)
    wait_for(page, "opens >= 1")
    publish(live.url, channels[0], "new")
    wait_for(page, "(c) => received.some((m) => m.channel === c && m.id === 4)", channels[0])
    wanted = {prefix + name: ids for name, ids in expected.items()}
    wanted[channels[0]] = [*wanted.get(channels[0], []), 4]
    assert ids_by_channel(page) == wanted


THROWS = """(args) => {
  try { WsgiPush.subscribe(...args); return null; } catch (error) { return error.message; }
}"""


@pytest.mark.parametrize(
    ("channels", "options", "error"),
    [
        ("a,b", {}, 'bad channel name "a,b"'),
        (["ok", ".."], {}, 'bad channel name ".."'),
        (["a", "b"], {"since": "1,2,3"}, "the cursor 1,2,3 has 3 entries for 2 channels"),
        ("a", {"since": -1}, "bad position -1"),
        ("a", {"since": "x"}, 'bad position "x"'),
        ("a", {"transport": "websocket"}, "unknown transport websocket"),
    ],
)
def test_bad_channels_and_positions_throw_at_once(
    page: Any, live: ServerProcess, channels: Any, options: dict[str, Any], error: str
) -> None:
    """Mistakes in the page are thrown by subscribe(), not retried against a 400."""
    page.goto(live.url + "/_test/client")
    assert page.evaluate(THROWS, [channels, options]) == f"wsgi_push: {error}"


def test_a_multiplexed_gap_names_its_channel(page: Any, short_memory: ServerProcess) -> None:
    channels = ["mux-gap-a", "mux-gap-b"]
    for n in range(1, 11):
        publish(short_memory.url, channels[0], n)
    for n in range(1, 4):
        publish(short_memory.url, channels[1], n)
    open_client(page, short_memory, channels, transport="sse", since=2)
    wait_for(page, "received.length >= 6")
    assert page.evaluate("gaps") == [
        {"channel": channels[0], "requested": 2, "first": 6, "last": 10}
    ]
    assert ids_by_channel(page) == {channels[0]: [6, 7, 8, 9, 10], channels[1]: [3]}
    assert page.evaluate("subscription.positions()") == {channels[0]: 10, channels[1]: 3}


def test_message_events_named_open_or_error_never_reach_connection_handlers(
    page: Any, live: ServerProcess
) -> None:
    """From a server that doesn't refuse those names: EventSource fires such
    events at its own onopen/onerror; the client tells them apart (they carry
    data) and hands them to nobody, even with handlers of those names."""
    channel = "reserved-names"
    body = (
        "retry: 50\nid: 0\n\nevent: open\ndata: x\nid: 1\n\n"
        "event: error\ndata: y\nid: 2\n\ndata: hello\nid: 3\n\n"
    )
    answered: list[Any] = []

    def answer_once(route: Any) -> None:
        if not answered:  # later requests stay pending: no second connection
            route.fulfill(status=200, content_type="text/event-stream", body=body)
        answered.append(route)

    page.route(re.compile(rf"/push/sse/{channel}\?"), answer_once)
    open_client(page, live, channel, transport="sse", since=0, events=["open", "error"])
    wait_for(page, "received.length >= 1 && errors.length >= 1")  # the error: the body's end
    assert page.evaluate("received.map((m) => [m.id, m.data])") == [[3, "hello"]]
    assert page.evaluate("named") == []
    assert page.evaluate("[opens, errors.map((e) => e.message)]") == [1, ["reconnecting"]]


# One connection shared by the tabs of a browser --------------------------


def open_tabs(
    context: Any, server: ServerProcess, subscriptions: list[Any], **options: Any
) -> list[Any]:
    """One tab per entry of ``subscriptions`` (its channels), in one browser
    context, each subscribing with ``share: true``."""
    tabs = []
    for channels in subscriptions:
        tab = context.new_page()
        open_client(tab, server, channels, share=True, **options)
        tabs.append(tab)
    return tabs


def leader_tabs(tabs: list[Any]) -> list[Any]:
    return [tab for tab in tabs if tab.evaluate("subscription.leader")]


# "vanishes": the leader tab goes silent (posts nothing more, no goodbye)
# before it closes, as when its renderer crashes: the others learn it is
# gone only from its released locks.
@pytest.mark.parametrize(
    ("transport", "ending"),
    [*((transport, "closes") for transport in TRANSPORTS), ("sse", "vanishes")],
)
def test_tabs_share_one_connection_and_a_new_leader_resumes_every_channel(
    new_context: Any, live: ServerProcess, transport: str, ending: str
) -> None:
    """Four tabs follow a common channel and one channel of their own over
    one connection. The leader tab closes mid-stream: another takes over
    within 5 s, the union loses the closed tab's channel, and every tab
    still gets every id of its channels exactly once."""
    common = f"share-{transport}-{ending}"
    own = [f"{common}-{n}" for n in range(4)]
    tabs = open_tabs(new_context(), live, [[common, c] for c in own], since=0, transport=transport)
    for tab in tabs:
        assert tab.evaluate("subscription.shared")
        wait_for(tab, "opens >= 1")
    wait_until(lambda: len(leader_tabs(tabs)) == 1, 10, "one leader")
    if transport != "poll":
        wait_until(lambda: open_connections(live) == 1, 10, "one connection for all tabs")
    publishers = publish_continuously(live.url, [common, *own])
    try:
        wait_for(tabs[0], "(n) => received.length >= n", 20)
        leader = leader_tabs(tabs)[0]
        followers = [tab for tab in tabs if tab is not leader]
        closed_own = own[tabs.index(leader)]
        if ending == "vanishes":
            leader.evaluate("BroadcastChannel.prototype.postMessage = () => {}")
        leader.close()
        started = time.monotonic()
        wait_until(lambda: len(leader_tabs(followers)) == 1, 5, "a new leader")
        wait_for(followers[0], "opens >= 2")
        takeover = time.monotonic() - started
        wait_for(followers[0], "(n) => received.length >= n", 60)
    finally:
        last_ids = stop_all(publishers)
    print(f"{transport}: a follower took over {takeover * 1000:.0f} ms after the leader {ending}")
    for tab in followers:
        channels = tab.evaluate("subscription.channels")
        wait_for(tab, REACHED, {c: last_ids[c] for c in channels})
        assert ids_by_channel(tab) == {c: list(range(1, last_ids[c] + 1)) for c in channels}
        assert tab.evaluate("gaps") == []
    if transport != "poll":
        wait_until(lambda: open_connections(live) == 1, 10, "one connection after the takeover")
    # The closed tab's own channel left the union: nothing follows it.
    wait_until(lambda: subscriber_count(live, closed_own) == 0, 10, "the union without it")


@pytest.mark.parametrize("ending", ["closes", "vanishes"])
def test_a_tab_joining_late_catches_up_and_leaving_keeps_the_others_whole(
    new_context: Any, live: ServerProcess, ending: str
) -> None:
    """A tab joining with since: 0 while the shared stream is far along gets
    the history first, then the stream; a follower closing changes the union
    and costs the others nothing. One that vanishes (no goodbye: the leader
    learns it is gone from its released lock alone) leaves the union too."""
    channel, extra = f"share-late-{ending}", f"share-late-{ending}-extra"
    context = new_context()
    (first,) = open_tabs(context, live, [channel], since=0, transport="stream")
    wait_for(first, "opens >= 1")
    publishers = publish_continuously(live.url, [channel, extra])
    try:
        wait_for(first, "(n) => received.length >= n", 30)
        (late,) = open_tabs(context, live, [[channel, extra]], since=0, transport="stream")
        wait_for(late, "(c) => received.filter((m) => m.channel === c).length >= 10", extra)
        if ending == "vanishes":
            late.evaluate("BroadcastChannel.prototype.postMessage = () => {}")
        late.close()
        wait_for(first, "(n) => received.length >= n", 60)
    finally:
        last_ids = stop_all(publishers)
    wait_for(first, REACHED, {channel: last_ids[channel]})
    assert ids_by_channel(first) == {channel: list(range(1, last_ids[channel] + 1))}
    wait_until(lambda: subscriber_count(live, extra) == 0, 10, "the union to drop the channel")


def test_a_hidden_tab_leaves_the_union_until_it_shows_again(
    new_context: Any, live: ServerProcess
) -> None:
    """``pagehide`` (the tab closing, or going into the back-forward cache)
    says goodbye: its channel leaves the union and stays out while the leader
    goes on posting (the hidden tab doesn't answer a state that no longer
    names it), and comes back with ``pageshow`` from the cache."""
    channel, extra = "share-hidden", "share-hidden-extra"
    context = new_context()
    (first,) = open_tabs(context, live, [channel], since=0, transport="sse")
    wait_for(first, "opens >= 1")
    (second,) = open_tabs(context, live, [[channel, extra]], since=0, transport="sse")
    wait_until(lambda: subscriber_count(live, extra) == 1, 10, "the union with the second tab")
    second.evaluate("dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}))")
    wait_until(lambda: subscriber_count(live, extra) == 0, 10, "the union without it")
    # The leader's posts go on reaching the hidden tab; the union stays as it is.
    seen = first.evaluate("received.length")
    publishers = publish_continuously(live.url, [channel])
    try:
        wait_for(second, "(n) => received.length >= n", seen + 20)
        wait_for(first, "(n) => received.length >= n", seen + 20)
        assert subscriber_count(live, extra) == 0
        assert first.evaluate("Object.keys(subscription._tab.interests).length") == 1
        second.evaluate("dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
        wait_until(lambda: subscriber_count(live, extra) == 1, 10, "the union with it again")
    finally:
        stop_all(publishers)


def test_a_follower_adding_and_removing_channels_changes_the_union_losing_nothing(
    new_context: Any, live: ServerProcess
) -> None:
    """A follower tab adds a channel (with its history) and removes one the
    leader tab still follows: the union follows, every tab stays whole."""
    common, added = "share-set-common", "share-set-added"
    tabs = open_tabs(new_context(), live, [common, common], since=0, transport="sse")
    for tab in tabs:
        wait_for(tab, "opens >= 1")
    wait_until(lambda: len(leader_tabs(tabs)) == 1, 10, "one leader")
    leader = leader_tabs(tabs)[0]
    (follower,) = [tab for tab in tabs if tab is not leader]
    publishers = publish_continuously(live.url, [common, added])
    try:
        wait_for(follower, "(n) => received.length >= n", 20)
        follower.evaluate("(c) => subscription.add(c, 0)", added)
        wait_for(follower, "(c) => received.filter((m) => m.channel === c).length >= 20", added)
        follower.evaluate("(c) => subscription.remove(c)", common)
        kept = len(ids_by_channel(follower)[common])
        wait_for(leader, "(n) => received.length >= n", kept + 20)
    finally:
        last_ids = stop_all(publishers)
    wait_for(leader, REACHED, {common: last_ids[common]})
    wait_for(follower, REACHED, {added: last_ids[added]})
    assert ids_by_channel(leader) == {common: list(range(1, last_ids[common] + 1))}
    assert ids_by_channel(follower) == {
        common: list(range(1, kept + 1)),
        added: list(range(1, last_ids[added] + 1)),
    }
    assert [tab.evaluate("subscription.leader") for tab in (leader, follower)] == [True, False]
    assert open_connections(live) == 1


def test_without_web_locks_each_tab_has_its_own_connection(
    new_context: Any, live: ServerProcess
) -> None:
    context = new_context()
    context.add_init_script("delete Navigator.prototype.locks")
    tabs = open_tabs(context, live, ["no-locks", "no-locks"], since=0, transport="stream")
    for tab in tabs:
        wait_for(tab, "opens >= 1")
        assert tab.evaluate("[subscription.shared, subscription.leader]") == [False, True]
    assert open_connections(live, "stream") == 2
    publish(live.url, "no-locks", "to both")
    for tab in tabs:
        wait_for(tab, "received.length >= 1")


# The ES module and its declarations ---------------------------------------

MODULE_PAGE = """<!doctype html><meta charset="utf-8"><title>module</title>
<script type="module">
  import WsgiPush, {subscribe} from "/push/client.mjs";
  window.received = [];
  window.sameApi = WsgiPush.subscribe === subscribe;
  window.leakedGlobal = "WsgiPush" in window;
  subscribe("module", {since: 0, onMessage: (m) => received.push(m)});
</script>"""


def test_the_es_module_imports_and_subscribes(page: Any, live: ServerProcess) -> None:
    """``import {subscribe} from "/push/client.mjs"`` in a module script;
    the module defines no global."""
    for n in (1, 2):
        publish(live.url, "module", n)
    page.route(
        live.url + "/_test/module",
        lambda route: route.fulfill(status=200, content_type="text/html", body=MODULE_PAGE),
    )
    page.goto(live.url + "/_test/module")
    wait_for(page, "received.length >= 2")
    assert page.evaluate("received.map((m) => [m.channel, m.id, m.data])") == [
        ["module", 1, 1],
        ["module", 2, 2],
    ]
    assert page.evaluate("[sameApi, leakedGlobal]") == [True, False]


@pytest.mark.parametrize(
    ("name", "content_type", "ending"),
    [
        ("client.js", "text/javascript", b"module.exports = WsgiPush;\n}\n"),
        ("client.mjs", "text/javascript", b"export var subscribe = WsgiPush.subscribe;\n"),
        ("client.d.ts", "application/typescript", b"export default WsgiPush;\n"),
    ],
)
def test_client_files_are_served_with_etags(
    live: ServerProcess, name: str, content_type: str, ending: bytes
) -> None:
    response = requests.get(f"{live.url}/push/{name}", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type + "; charset=utf-8"
    assert response.content.endswith(ending)
    etag = response.headers["ETag"]
    again = requests.get(f"{live.url}/push/{name}", headers={"If-None-Match": etag}, timeout=5)
    assert (again.status_code, again.content) == (304, b"")


def test_the_declarations_cover_every_option() -> None:
    """Every option the client knows (its DEFAULTS) is declared in client.d.ts."""
    static = ROOT / "wsgi_push" / "static"
    script = (static / "client.js").read_text()
    defaults = script[script.index("var DEFAULTS = {") : script.index("};")]
    options = re.findall(r"^\s+(\w+):", defaults, re.MULTILINE)
    assert len(options) == 13
    declarations = (static / "client.d.ts").read_text()
    declared = declarations[declarations.index("interface SubscribeOptions") :]
    assert [name for name in options if f"\n  {name}?:" not in declared] == []


def test_the_module_can_be_written_for_a_bundler(tmp_path: Any) -> None:
    written = write_module(tmp_path / "vendor")
    assert [path.name for path in written] == ["client.mjs", "client.d.mts"]
    assert written[0].read_bytes() == module_source()
    assert b"export function subscribe" in written[1].read_bytes()
